"""API-key authentication (fastgate/policies/api_key/policy.py): real keys and hashes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fastgate import errors
from fastgate.config.model import Api, ApiKey, ApiKeyLocation, Application, Config, Upstream
from fastgate.context import RequestContext
from fastgate.credentials import new_api_key
from fastgate.policies.api_key.policy import (
    REVOCATIONS_KEY,
    ApiKeyAuthenticator,
    build,
    compile_referer_glob,
)
from fastgate.policies.shared import SharedState

KEY, KEY_HASH = new_api_key()
OTHER, OTHER_HASH = new_api_key()
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


class Req:
    def __init__(self, target: bytes = b"/orders", headers=(), method: bytes = b"GET") -> None:
        self.method = method
        self.target = target
        self.headers = list(headers)


def ctx(ip: str = "203.0.113.7") -> RequestContext:
    return RequestContext("req-1", ip, "public", "https", None)


def app(*keys: ApiKey, name: str = "mobile-app", scopes=("orders:read", "orders:write")) -> Application:
    return Application(name=name, scopes=scopes, api_keys=keys)


def auth(*keys: ApiKey, **kw) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator([app(*keys)], **kw)


def verify(a, req, c=None):
    found = a.find(c or ctx(), req)
    assert found is not None
    return asyncio.run(a.verify(c or ctx(), req, found))


def test_good_key_in_header():
    a = auth(ApiKey(id="k1", hash=KEY_HASH))
    req = Req(headers=[(b"x-api-key", KEY.encode())])
    found = a.find(ctx(), req)
    assert found.strip_headers == (b"x-api-key",) and found.strip_query is None
    ident = asyncio.run(a.verify(ctx(), req, found))
    assert ident.method == "api_key"
    assert ident.application == "mobile-app" and ident.subject is None
    assert ident.credential_id == "k1"
    assert ident.scopes == frozenset({"orders:read", "orders:write"})  # the application's scopes
    assert a.challenge() == 'ApiKey header="X-API-Key"'


def test_configured_header_name_is_case_insensitive():
    a = auth(ApiKey(id="k1", hash=KEY_HASH), header="X-Custom-Key", query=None)
    assert a.challenge() == 'ApiKey header="X-Custom-Key"'
    assert a.find(ctx(), Req(headers=[(b"x-api-key", KEY.encode())])) is None
    ident = verify(a, Req(headers=[(b"x-custom-key", KEY.encode())]))
    assert ident.credential_id == "k1"


def test_good_key_in_query():
    a = auth(ApiKey(id="k1", hash=KEY_HASH))
    req = Req(target=b"/orders?a=1&api_key=" + KEY.encode() + b"&b=%20")
    found = a.find(ctx(), req)
    assert found.strip_query == "api_key" and found.strip_headers == ()
    assert asyncio.run(a.verify(ctx(), req, found)).credential_id == "k1"


def test_query_value_is_percent_decoded_and_name_may_be_encoded():
    a = auth(ApiKey(id="k1", hash=KEY_HASH))
    encoded = "".join(f"%{b:02X}" for b in KEY.encode())
    assert verify(a, Req(target=f"/x?api_key={encoded}".encode())).credential_id == "k1"
    assert verify(a, Req(target=f"/x?api%5Fkey={KEY}".encode())).credential_id == "k1"


def test_query_lookup_can_be_disabled_and_renamed():
    off = auth(ApiKey(id="k1", hash=KEY_HASH), query=None)
    assert off.find(ctx(), Req(target=f"/x?api_key={KEY}".encode())) is None
    renamed = auth(ApiKey(id="k1", hash=KEY_HASH), query="key")
    assert renamed.find(ctx(), Req(target=f"/x?api_key={KEY}".encode())) is None
    assert verify(renamed, Req(target=f"/x?key={KEY}".encode())).credential_id == "k1"


def test_header_wins_over_query_and_both_are_stripped():
    a = auth(ApiKey(id="k1", hash=KEY_HASH), ApiKey(id="k2", hash=OTHER_HASH))
    req = Req(target=f"/x?api_key={OTHER}".encode(), headers=[(b"x-api-key", KEY.encode())])
    found = a.find(ctx(), req)
    assert found.strip_headers == (b"x-api-key",) and found.strip_query == "api_key"
    assert asyncio.run(a.verify(ctx(), req, found)).credential_id == "k1"


@pytest.mark.parametrize("req", [
    Req(),
    Req(target=b"/x?q=1&xapi_key=abc&api_keyx=abc"),
    Req(headers=[(b"authorization", b"Bearer abc"), (b"x-api-keys", b"abc")]),
])
def test_missing(req):
    assert auth(ApiKey(id="k1", hash=KEY_HASH)).find(ctx(), req) is None


@pytest.mark.parametrize("req", [
    Req(headers=[(b"x-api-key", KEY.encode()), (b"x-api-key", KEY.encode())]),  # ambiguous
    Req(target=f"/x?api_key={KEY}&api_key={KEY}".encode()),  # ambiguous
    Req(headers=[(b"x-api-key", b"")]),
    Req(target=b"/x?api_key"),
    Req(headers=[(b"x-api-key", b"\xff\xfe")]),  # not UTF-8
    Req(target=b"/x?api_key=%ff%fe"),
    Req(headers=[(b"x-api-key", b"k" * 5000)]),
])
def test_malformed(req):
    a = auth(ApiKey(id="k1", hash=KEY_HASH))
    with pytest.raises(errors.InvalidCredentials) as e:
        verify(a, req)
    assert e.value.status == 401 and e.value.code == "invalid_credentials"


def test_unknown_key_is_invalid_and_secret_free():
    a = auth(ApiKey(id="k1", hash=KEY_HASH))
    with pytest.raises(errors.InvalidCredentials) as e:
        verify(a, Req(headers=[(b"x-api-key", OTHER.encode())]))
    err = e.value
    assert err.detail == "invalid API key"
    assert ("www-authenticate", 'ApiKey header="X-API-Key"') in err.headers
    for text in (err.detail, err.log_detail, str(err)):
        assert OTHER not in text and OTHER_HASH[7:] not in text


def test_expired_key():
    clock = [EXPIRES.timestamp() - 1]
    a = auth(ApiKey(id="k1", hash=KEY_HASH, expires=EXPIRES), clock=lambda: clock[0])
    req = Req(headers=[(b"x-api-key", KEY.encode())])
    assert verify(a, req).expires_at == EXPIRES.timestamp()
    clock[0] = EXPIRES.timestamp()
    with pytest.raises(errors.InvalidCredentials, match="expired"):
        verify(a, req)


def test_naive_expiry_is_utc():
    naive = datetime(2027, 1, 1)
    a = auth(ApiKey(id="k1", hash=KEY_HASH, expires=naive), clock=lambda: EXPIRES.timestamp() + 1)
    with pytest.raises(errors.InvalidCredentials):
        verify(a, Req(headers=[(b"x-api-key", KEY.encode())]))


@pytest.mark.parametrize(("ip", "ok"), [
    ("10.1.2.3", True),
    ("192.0.2.7", True),
    ("::ffff:10.1.2.3", True),  # IPv4-mapped, from a dual-stack listener
    ("2001:db8:abcd::1", True),
    ("192.0.2.8", False),
    ("11.0.0.1", False),
    ("2001:db9::1", False),
    ("::ffff:192.0.2.8", False),
    ("", False),
    ("not-an-ip", False),
])
def test_allowed_ips_v4_and_v6(ip, ok):
    a = auth(ApiKey(id="k1", hash=KEY_HASH, allowed_ips=("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")))
    req = Req(headers=[(b"x-api-key", KEY.encode())])
    if ok:
        assert verify(a, req, ctx(ip)).credential_id == "k1"
    else:
        with pytest.raises(errors.Forbidden) as e:
            verify(a, req, ctx(ip))
        assert e.value.status == 403 and e.value.code == "forbidden"
        assert e.value.detail == "API key not allowed from this address"


def test_v6_only_key_refuses_v4_clients():
    a = auth(ApiKey(id="k1", hash=KEY_HASH, allowed_ips=("2001:db8::/32",)))
    with pytest.raises(errors.Forbidden):
        verify(a, Req(headers=[(b"x-api-key", KEY.encode())]), ctx("10.0.0.1"))


@pytest.mark.parametrize(("referer", "ok"), [
    ("https://app.example.com/page", True),
    ("https://a.b.example.com/x/y?z=1", True),
    ("HTTPS://App.Example.COM/x", True),  # scheme and host are case-insensitive
    ("https://app.example.com/", True),
    (None, False),
    ("", False),
    ("https://example.com/", False),  # `*` is at least one label
    ("https://.example.com/", False),
    ("http://app.example.com/", False),
    ("https://evil.com/.example.com/", False),  # `*` never crosses /
    ("https://evil.com?.example.com/", False),
    ("https://evil.com#.example.com/", False),
    ("https://user@evil.com:1@x.example.com/", False),
    ("https://app.example.com.evil.com/", False),
    ("https://app.example.com:8443/x", False),  # no port in the glob
    ("https://app.example.com", False),  # no path at all
])
def test_allowed_referers(referer, ok):
    a = auth(ApiKey(id="k1", hash=KEY_HASH, allowed_referers=("https://*.example.com/*",)))
    headers = [(b"x-api-key", KEY.encode())]
    if referer is not None:
        headers.append((b"referer", referer.encode()))
    if ok:
        assert verify(a, Req(headers=headers)).credential_id == "k1"
    else:
        with pytest.raises(errors.Forbidden, match="Referer"):
            verify(a, Req(headers=headers))


def test_two_referers_are_refused():
    a = auth(ApiKey(id="k1", hash=KEY_HASH, allowed_referers=("https://*.example.com/*",)))
    headers = [(b"x-api-key", KEY.encode()), (b"referer", b"https://evil.com/"),
               (b"referer", b"https://app.example.com/")]
    with pytest.raises(errors.Forbidden):
        verify(a, Req(headers=headers))


def test_referer_glob_semantics():
    p = compile_referer_glob("https://app.example.com/shop/*")
    assert p.fullmatch("https://app.example.com/shop/a/b")
    assert not p.fullmatch("https://app.example.com/SHOP/a")  # paths are case-sensitive
    assert not p.fullmatch("https://app.example.com/shop")
    q = compile_referer_glob("https://app.example.com/a?b")  # `?` is literal
    assert q.fullmatch("https://app.example.com/a?b")
    assert not q.fullmatch("https://app.example.com/axb")
    port = compile_referer_glob("https://app.example.com:*/*")
    assert port.fullmatch("https://app.example.com:8443/")
    assert not port.fullmatch("https://app.example.com:8443@evil.com/")
    exact = compile_referer_glob("https://app.example.com")
    assert exact.fullmatch("https://app.example.com")
    assert not exact.fullmatch("https://app.example.com/x")


def test_revocation_set_is_shared_and_checked_every_request():
    shared = SharedState()
    api = Api(name="orders", base_path="/orders", upstream=Upstream(urls=()))
    config = Config(source=Path("gw.yaml"), listeners=(), apis=(api,),
                    applications=(app(ApiKey(id="k1", hash=KEY_HASH)),))
    a = build(api, config, shared)
    req = Req(headers=[(b"x-api-key", KEY.encode())])
    assert verify(a, req).credential_id == "k1"
    shared.get(REVOCATIONS_KEY, dict).revoke("k1")
    with pytest.raises(errors.InvalidCredentials, match="revoked"):
        verify(a, req)
    assert build(api, config, shared).find(ctx(), req) is not None
    with pytest.raises(errors.InvalidCredentials):  # survives a reload
        verify(build(api, config, shared), req)
    shared.get(REVOCATIONS_KEY, dict).unrevoke("k1")
    assert verify(a, req).credential_id == "k1"


def test_key_removed_by_reload_stops_working():
    shared = SharedState()
    api = Api(name="orders", base_path="/orders", upstream=Upstream(urls=()),
              api_key=ApiKeyLocation(header="X-Key", query=None))
    before = Config(source=Path("gw.yaml"), listeners=(), apis=(api,),
                    applications=(app(ApiKey(id="k1", hash=KEY_HASH)),))
    after = Config(source=Path("gw.yaml"), listeners=(), apis=(api,), applications=(app(),))
    req = Req(headers=[(b"x-key", KEY.encode())])
    assert verify(build(api, before, shared), req).application == "mobile-app"
    with pytest.raises(errors.InvalidCredentials):
        verify(build(api, after, shared), req)


def test_keys_of_several_applications():
    a = ApiKeyAuthenticator([
        app(ApiKey(id="k1", hash=KEY_HASH), name="one", scopes=()),
        app(ApiKey(id="k2", hash=OTHER_HASH), name="two", scopes=("x",)),
    ])
    one = verify(a, Req(headers=[(b"x-api-key", KEY.encode())]))
    two = verify(a, Req(headers=[(b"x-api-key", OTHER.encode())]))
    assert (one.application, one.scopes) == ("one", frozenset())
    assert (two.application, two.scopes) == ("two", frozenset({"x"}))


def test_verdict_memos_stay_bounded_and_correct():
    from fastgate.policies.api_key import policy

    a = auth(ApiKey(id="k1", hash=KEY_HASH, allowed_ips=("10.0.0.0/8",),
                    allowed_referers=("https://*.example.com/*",)))
    entry = next(iter(a._keys.values()))
    for i in range(policy.VERDICT_MEMO_MAX * 3):
        assert entry.ip_allowed(f"10.0.{i >> 8 & 255}.{i & 255}")
        assert not entry.ip_allowed(f"11.0.{i >> 8 & 255}.{i & 255}")
        assert entry.referer_allowed(f"https://a{i}.example.com/")
        assert not entry.referer_allowed(f"https://a{i}.example.org/")
    assert len(entry._ip_memo) <= policy.VERDICT_MEMO_MAX
    assert len(entry._referer_memo) <= policy.VERDICT_MEMO_MAX
    long = "https://a.example.com/" + "x" * 1000
    assert entry.referer_allowed(long) and long not in entry._referer_memo
