"""The revoked-jti set: expiry with the token, bounded size, the eviction order when full."""

from __future__ import annotations

from fastgate.policies.oauth2.revocation import (
    DEFAULT_RETENTION,
    RETENTION_MARGIN,
    RevocationList,
    for_shared,
)
from fastgate.policies.shared import SharedState

from .util import Clock


def test_revoke_until_exp_plus_margin():
    c = Clock(1_000_000.0)
    rl = RevocationList(clock=c)
    rl.revoke("a", c.now + 100)
    assert rl.is_revoked("a") and not rl.is_revoked("b")
    c.advance(100 + RETENTION_MARGIN - 1)
    assert rl.is_revoked("a")
    c.advance(2)
    assert not rl.is_revoked("a") and len(rl) == 0


def test_already_expired_and_unknown_exp():
    c = Clock(1_000_000.0)
    rl = RevocationList(clock=c)
    rl.revoke("dead", c.now - RETENTION_MARGIN - 1)
    assert not rl.is_revoked("dead") and len(rl) == 0
    rl.revoke("noexp", None)
    c.advance(DEFAULT_RETENTION - 1)
    assert rl.is_revoked("noexp")
    c.advance(2)
    assert not rl.is_revoked("noexp")


def test_re_revoking_only_extends():
    c = Clock(1_000_000.0)
    rl = RevocationList(clock=c)
    rl.revoke("a", c.now + 1000)
    rl.revoke("a", c.now + 10)
    c.advance(500)
    assert rl.is_revoked("a")


def test_bounded_drops_expired_first_then_closest_to_expiry():
    c = Clock(1_000_000.0)
    rl = RevocationList(max_entries=3, clock=c)
    rl.revoke("short", c.now + 10)
    rl.revoke("mid", c.now + 1000)
    rl.revoke("long", c.now + 5000)
    c.advance(10 + RETENTION_MARGIN + 1)  # "short" has expired
    rl.revoke("new1", c.now + 3000)
    assert len(rl) == 3 and rl.evicted_live == 0
    assert rl.is_revoked("mid") and rl.is_revoked("long") and rl.is_revoked("new1")
    rl.revoke("new2", c.now + 4000)  # full of live entries: the one closest to its end goes
    assert len(rl) == 3 and rl.evicted_live == 1
    assert not rl.is_revoked("mid")
    assert rl.is_revoked("long") and rl.is_revoked("new1") and rl.is_revoked("new2")


def test_heap_stays_compact_under_re_revocation():
    c = Clock(1_000_000.0)
    rl = RevocationList(max_entries=10, clock=c)
    for i in range(1000):
        rl.revoke(f"j{i % 5}", c.now + i)
    assert len(rl) == 5 and len(rl._heap) <= 2 * 10 + 16


def test_one_list_per_process():
    s = SharedState()
    assert for_shared(s) is for_shared(s)
    s.close()
