"""The threat-protection unit on real scanners: bodies fed in chunks, heads scanned, monitor."""

from __future__ import annotations

import asyncio

import pytest

from fastgate import errors
from fastgate.config.model import (
    Api,
    Config,
    JsonProtection,
    Listener,
    RegexProtection,
    ThreatProtection,
    Upstream,
    UpstreamUrl,
    XmlProtection,
)
from fastgate.context import RequestContext
from fastgate.policies.shared import SharedState
from fastgate.policies.threat.policy import build


class Req:
    def __init__(self, body_chunks: list[bytes], ctype: bytes | None = None, method: bytes = b"POST",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.method = method
        self.target = b"/x"
        self.headers = list(headers or [])
        if ctype is not None:
            self.headers.append((b"content-type", ctype))
        self._chunks = body_chunks
        self.content_length = sum(map(len, body_chunks))
        self.read = 0

    async def body(self, max_bytes: int):
        seen = 0
        for c in self._chunks:
            seen += len(c)
            if seen > max_bytes:
                raise errors.PayloadTooLarge("too big")
            self.read += 1
            yield c


SHARED = SharedState()


def _policy(regex=True, json=True, xml=True, **xml_kw):
    tp = ThreatProtection(
        regex=RegexProtection(sets=("demo",)) if regex else None,
        json=JsonProtection(max_depth=3, max_bytes=1000) if json else None,
        xml=XmlProtection(max_depth=3, max_bytes=1000, **xml_kw) if xml else None,
    )
    api = Api(name="a", base_path="/a", upstream=Upstream(urls=(UpstreamUrl("http", "127.0.0.1", 1),)),
              threat_protection=tp)
    cfg = Config(source=None, listeners=(Listener("l", "127.0.0.1", 0),), apis=(api,))
    return build(api, cfg, SHARED)


def _ctx() -> RequestContext:
    return RequestContext("rid", "127.0.0.1", "l", "https", None)


def run(coro):
    return asyncio.run(coro)


def test_clean_json_body_passes_whole():
    p = _policy()
    body = run(p.read_body(_ctx(), Req([b'{"a": [1, ', b'2]}'], b"application/json"), 8 << 20))
    assert body == b'{"a": [1, 2]}'


def test_json_depth_refused_at_the_chunk_that_decides():
    p = _policy()
    req = Req([b'{"a": [', b'[[1]]]}', b" " * 10], b"application/json")
    with pytest.raises(errors.PayloadRejected) as e:
        run(p.read_body(_ctx(), req, 8 << 20))
    assert e.value.limit == "max_depth"
    assert "max_depth" in e.value.detail
    assert req.read == 2  # the third chunk was never read


def test_lying_content_type_is_sniffed():
    p = _policy()
    with pytest.raises(errors.PayloadRejected):
        run(p.read_body(_ctx(), Req([b"  [[[[1]]]]"], b"text/plain"), 8 << 20))
    with pytest.raises(errors.PayloadRejected) as e:
        run(p.read_body(_ctx(), Req([b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'], None), 8 << 20))
    assert e.value.limit == "allow_dtd"


def test_malformed_json_refused():
    with pytest.raises(errors.PayloadRejected) as e:
        run(_policy().read_body(_ctx(), Req([b'{"a": '], b"application/json"), 8 << 20))
    assert e.value.limit == "malformed"


def test_over_protection_max_bytes_is_413():
    with pytest.raises(errors.PayloadTooLarge):
        run(_policy().read_body(_ctx(), Req([b"[" + b"1," * 600 + b"1]"], b"application/json"), 8 << 20))


def test_regex_match_split_across_chunks_in_body():
    p = _policy(json=False, xml=False)
    ctx = _ctx()
    with pytest.raises(errors.ThreatDetected) as e:
        run(p.read_body(ctx, Req([b"name=x' UNI", b"ON SELECT 1,2--"], b"application/x-www-form-urlencoded"),
                        8 << 20))
    assert e.value.extra["rule_set"] == "demo"
    assert "UNION" not in str(e.value.detail).upper()
    assert ctx.decision.startswith("threat_protection.regex:demo-")


def test_head_scan_query_and_headers_but_not_credentials():
    p = _policy()
    ctx = _ctx()
    with pytest.raises(errors.ThreatDetected):
        p.check_head(ctx, Req([]), "/a/x", "q=1%27%20OR%201%3D1", frozenset())
    attack = b"' or 1=1 --"
    p.check_head(_ctx(), Req([], headers=[(b"authorization", attack), (b"x-api-key", attack)]), "/a", "",
                 frozenset({b"x-api-key"}))
    with pytest.raises(errors.ThreatDetected):
        p.check_head(_ctx(), Req([], headers=[(b"x-note", attack)]), "/a", "", frozenset())



def test_head_verdicts_are_remembered_and_stay_the_same(monkeypatch):
    from fastgate.policies.threat import policy as mod

    p = _policy()
    attack = b"' or 1=1 --"
    for _ in range(3):  # the second and third time from the memo: same verdicts, same rule
        p.check_head(_ctx(), Req([], headers=[(b"accept", b"application/json")]), "/a/x", "q=1", frozenset())
        for where in ({"headers": [(b"x-note", attack)]}, {"query": "q=1%27%20OR%201%3D1"},
                      {"path": "/a/%27%20or%201=1%20--"}):
            ctx = _ctx()
            with pytest.raises(errors.ThreatDetected):
                p.check_head(ctx, Req([], headers=where.get("headers")), where.get("path", "/a"),
                             where.get("query", ""), frozenset())
            assert ctx.decision.startswith("threat_protection.regex:demo-sqli")
    assert p._memo_header[attack] is not None and p._memo_header[b"application/json"] is None
    # bounded: emptied when full; values past HEAD_MEMO_BYTES are scanned every time
    monkeypatch.setattr(mod, "HEAD_MEMO_ENTRIES", 4)
    for i in range(10):
        p.check_head(_ctx(), Req([], headers=[(b"x-n", b"v%d" % i)]), "/a", "", frozenset())
        assert len(p._memo_header) <= 4
    long = b"x" * (mod.HEAD_MEMO_BYTES + 1)
    p.check_head(_ctx(), Req([], headers=[(b"x-long", long)]), "/a", "", frozenset())
    assert long not in p._memo_header
    with pytest.raises(errors.ThreatDetected):
        p.check_head(_ctx(), Req([], headers=[(b"x-long", long + attack)]), "/a", "", frozenset())


def _outcome(p, chunks, ctype, monitor=False):
    ctx = _ctx()
    seen = []
    enforce = seen.append if monitor else None
    try:
        body = run(p.read_body(ctx, Req(chunks, ctype), 8 << 20, enforce=enforce))
    except errors.GatewayError as e:
        return (type(e).__name__, e.detail, ctx.decision)
    return (body, ctx.decision, [(type(e).__name__, e.detail) for e in seen])


@pytest.mark.parametrize("ctype", [b"application/json", b"application/xml", b"text/plain", None])
@pytest.mark.parametrize("body", [
    b'{"a": [1, 2], "b": "x"}', b'{"a": [[[[1]]]]}', b'{"a": 1, "a": 2}', b'{"a": 1',
    b'{"q": "1\' union select 1,2 --"}', b"<a><b>text</b></a>", b"<!DOCTYPE a><a/>",
    b"<a><b><c><d/></c></b></a>", b"plain ' or 1=1 -- text", b"   ", b'  {"ok": true}  ',
    b'{"s": "' + b"x" * 2000 + b'"}',
])
@pytest.mark.parametrize("monitor", [False, True])
def test_one_piece_and_many_pieces_give_the_same_outcome(body, ctype, monitor):
    """A body read in one piece is scanned whole; in pieces, as it arrives: same verdicts."""
    p = _policy()
    whole = _outcome(p, [body], ctype, monitor)
    assert _outcome(p, [body[i:i + 1] for i in range(len(body))], ctype, monitor) == whole
    assert _outcome(p, [body[:3], body[3:]], ctype, monitor) == whole

def test_monitor_records_and_still_returns_the_body():
    p = _policy()
    seen = []
    body = run(p.read_body(_ctx(), Req([b'[[[[', b'1]]]]'], b"application/json"), 8 << 20, enforce=seen.append))
    assert body == b"[[[[1]]]]"
    assert [type(e).__name__ for e in seen] == ["PayloadRejected"]


def test_benign_bodies_pass():
    p = _policy()
    for chunks, ctype in [
        ([b'{"name": "O\'Brien", "note": "order by date, then select a seat"}'], b"application/json"),
        ([b"<o><n>Tom &amp; Jerry</n></o>"], b"application/xml"),
        ([b"plain text with <b>5 &lt; 6</b>"], b"text/plain"),
    ]:
        assert run(p.read_body(_ctx(), Req(chunks, ctype), 8 << 20)) == b"".join(chunks)
