"""Threat protection for one API: regex rules on path, query and header values; JSON and XML
limits on the body chunk by chunk as it arrives, then the regex rules over the accepted body.

Invariant: the upstream request starts only after the whole body was accepted. The body is
buffered up to the protection's `max_bytes` (never spilled to disk); structural limits are
checked while it arrives (a depth bomb or a DOCTYPE is refused at the byte that decides it),
and nothing refused is ever forwarded, even in part. Problems name the limit or the rule set,
never the payload.
"""

from __future__ import annotations

import asyncio

from ... import errors
from ...config.model import Api, Config, ThreatProtection
from ...regex_rules import select_rules
from ..shared import SharedState

XSD_INLINE_BYTES = 64 * 1024  # larger documents are validated off the event loop
# Header values the gateway consumes as credentials are not scanned (they are never forwarded).
CREDENTIAL_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"cookie"})
# Head values scanned once and remembered per policy (paths, queries and header values repeat
# from request to request); longer values are scanned every time.
HEAD_MEMO_ENTRIES = 512
HEAD_MEMO_BYTES = 256
_MISS = object()


def _is_json_type(ctype: bytes) -> bool:
    base = ctype.split(b";", 1)[0].strip().lower()
    return base == b"application/json" or base.endswith(b"+json")


def _is_xml_type(ctype: bytes) -> bool:
    base = ctype.split(b";", 1)[0].strip().lower()
    return base in (b"application/xml", b"text/xml") or base.endswith(b"+xml")


def _rule_set(rule_id: str) -> str:
    return rule_id.split("-", 1)[0] if not rule_id.startswith("custom[") else "custom"


class ThreatPolicy:
    def __init__(self, api: Api, tp: ThreatProtection, body_limit: int, shared: SharedState) -> None:
        self.api = api
        self.patterns = None
        self.scan = frozenset()
        if tp.regex is not None:
            from ..._native.regexscan import PatternSet

            custom = [(f"custom[{i}]", p) for i, p in enumerate(tp.regex.custom)]
            rules = select_rules(tp.regex.sets, custom)
            key = ("regex", tuple(rules))
            self.patterns = shared.get(key, lambda: PatternSet(rules))  # compiling costs ~0.2 s
            self.scan = frozenset(tp.regex.scan)
        self._memo_path: dict[str, str | None] = {}
        self._memo_query: dict[str, str | None] = {}
        self._memo_header: dict[bytes, str | None] = {}
        self.json_limits = self.xml_limits = None
        self._JsonScanner = self._XmlScanner = self._scan_json = self._scan_xml = None
        if tp.json is not None:
            from ..._native.jsonscan import JsonLimits, JsonScanner, scan_json

            self._JsonScanner, self._scan_json = JsonScanner, scan_json
            j = tp.json
            self.json_limits = JsonLimits(
                max_depth=j.max_depth, max_string_length=j.max_string_length,
                max_key_length=j.max_key_length, max_array_elements=j.max_array_elements,
                max_object_entries=j.max_object_entries, max_bytes=j.max_bytes)
        self.xsd = None
        if tp.xml is not None:
            from ..._native.xmlscan import XmlLimits, XmlScanner, scan_xml

            self._XmlScanner, self._scan_xml = XmlScanner, scan_xml
            x = tp.xml
            self.xml_limits = XmlLimits(
                max_depth=x.max_depth, max_elements=x.max_elements, max_attributes=x.max_attributes,
                max_attribute_length=x.max_attribute_length, max_text_length=x.max_text_length,
                max_children=x.max_children, max_bytes=x.max_bytes, allow_dtd=x.allow_dtd)
            if x.schema is not None:
                self.xsd = shared.get(("xsd", x.schema), lambda: _load_xsd(x.schema))
        caps = [body_limit]
        if tp.json is not None and tp.json.max_bytes is not None:
            caps.append(tp.json.max_bytes)
        if tp.xml is not None and tp.xml.max_bytes is not None:
            caps.append(tp.xml.max_bytes)
        self.buffer_limit = max(caps) if len(caps) > 1 else body_limit
        self.inspects_body = (self.patterns is not None and "body" in self.scan) or \
            self.json_limits is not None or self.xml_limits is not None

    # ---------------------------------------------------------------- head (stage 4)
    def check_head(self, ctx, req, raw_path: str, query: str, skip_headers: frozenset[bytes]) -> None:
        if self.patterns is None:
            return
        hit = None
        scan = self.scan
        if "path" in scan:
            hit = self._scan_head(raw_path, "path", self._memo_path)
        if hit is None and query and "query" in scan:
            hit = self._scan_head(query, "query", self._memo_query)
        if hit is None and "headers" in scan:
            memo = self._memo_header
            for name, value in req.headers:
                if name in CREDENTIAL_HEADERS or name in skip_headers or name == b"host":
                    continue
                hit = self._scan_head(value, "header", memo)
                if hit is not None:
                    break
        if hit is not None:
            self._threat(ctx, hit)

    def _scan_head(self, value, kind: str, memo: dict):
        """The rule id that matches `value` (a str path or query, or a bytes header value), or
        None. Verdicts are a function of (value, kind, rules): a head value seen before (the same
        Content-Type, Accept or path on every request) is answered from `memo`, bounded by
        HEAD_MEMO_ENTRIES values of at most HEAD_MEMO_BYTES (emptied when full)."""
        hit = memo.get(value, _MISS)
        if hit is _MISS:
            m = self.patterns.scan(value.encode("latin-1") if kind != "header" else value, kind=kind)
            hit = None if m is None else m.rule_id
            if len(value) <= HEAD_MEMO_BYTES:
                if len(memo) >= HEAD_MEMO_ENTRIES:
                    memo.clear()
                memo[value] = hit
        return hit

    def _threat(self, ctx, rule_id: str) -> None:
        ctx.decision = f"threat_protection.regex:{rule_id}"
        raise errors.ThreatDetected(f"request blocked by the {_rule_set(rule_id)} rule set",
                                    extra={"rule_set": _rule_set(rule_id)})

    # ---------------------------------------------------------------- body (stage 8)
    async def read_body(self, ctx, req, max_body: int, enforce=None) -> bytes:
        """The whole body, accepted: every chunk is scanned as it arrives; anything that fails
        raises before a byte reaches the upstream. `enforce(err)` decides what a violation does
        (raise it, or, in monitor mode, record it and return; None: raise): after a recorded
        violation the body is still read whole but no longer scanned.

        A body that arrives in one piece (its first chunk is all Content-Length announced; the
        usual case up to tens of KiB) is scanned in one native call per scanner once read: no
        byte of it could be refused any earlier."""
        limit = min(max_body, self.buffer_limit)
        expected = req.content_length
        if expected > limit:
            raise errors.PayloadTooLarge(f"body larger than {limit} bytes")
        ctype = b""
        for name, value in req.headers:
            if name == b"content-type":
                ctype = value
                break
        kind = None  # "json" | "xml" | "" (neither), decided at the first non-space byte
        if ctype == b"application/json" or _is_json_type(ctype):
            if self.json_limits is not None:
                kind = "json"
        elif _is_xml_type(ctype) and self.xml_limits is not None:
            kind = "xml"
        state = None
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in req.body(limit):
                size += len(chunk)
                chunks.append(chunk)
                if state is None:
                    if size == expected:
                        continue  # all of it, in one piece: scanned whole below
                    state = _BodyScan(self, ctx, kind)
                    for i in range(len(chunks) - 1):  # a first piece held back above, if any
                        self._feed(state, chunks[:i + 1], chunks[i], enforce)
                if state.active:
                    self._feed(state, chunks, chunk, enforce)
            if state is not None and state.active:
                try:
                    state.finish()
                except errors.GatewayError as err:
                    state.active = False
                    (enforce or _raise)(err)
        finally:
            if state is not None:
                state.stop()
        if state is None:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            kind, clean = self._scan_whole(ctx, body, kind, enforce)
        else:
            body = b"".join(chunks)
            kind, clean = state.kind, state.clean
        if clean and self.patterns is not None and "body" in self.scan and body:
            hit = self.patterns.scan(body, kind="json" if kind == "json" else "body")
            if hit is not None:
                try:
                    self._threat(ctx, hit.rule_id)
                except errors.GatewayError as err:
                    (enforce or _raise)(err)
        if kind == "xml" and self.xsd is not None:
            try:
                await self._validate_xsd(body)
            except errors.GatewayError as err:
                (enforce or _raise)(err)
        ctx.bytes_in = size
        return body

    @staticmethod
    def _feed(state, chunks: list[bytes], chunk: bytes, enforce) -> None:
        try:
            state.feed(chunks, chunk)
        except errors.GatewayError as err:
            state.active = False  # monitor mode: read on, scan no further
            (enforce or _raise)(err)

    def _scan_whole(self, ctx, body: bytes, kind: str | None, enforce) -> tuple[str | None, bool]:
        """The structural scan of a body read whole: the same verdicts, limits and offsets as
        feeding it in pieces (the scanners' invariant). Returns (kind, no violation)."""
        if kind is None:
            kind = self._sniff((body,))
        try:
            if kind == "json":
                self._scan_json(body, self.json_limits)
            elif kind == "xml":
                self._scan_xml(body, self.xml_limits)
        except errors.PayloadRejected as e:
            (enforce or _raise)(_rejected(ctx, e))
            return kind, False
        return kind, True

    def _sniff(self, chunks) -> str | None:
        """A lying or missing Content-Type does not skip the scanners: the first non-space
        byte says JSON ('{' or '[') or XML ('<')."""
        for c in chunks:
            s = c.lstrip(b" \t\r\n")
            if s:
                if s[:1] in (b"{", b"[") and self.json_limits is not None:
                    return "json"
                if s[:1] == b"<" and self.xml_limits is not None:
                    return "xml"
                return ""
        return None


    @staticmethod
    def _guard(ctx, fn, *args) -> None:
        try:
            fn(*args)
        except errors.PayloadRejected as e:
            raise _rejected(ctx, e) from None

    async def _validate_xsd(self, body: bytes) -> None:
        if len(body) > XSD_INLINE_BYTES:
            problems = await asyncio.get_running_loop().run_in_executor(None, _xsd_problems, self.xsd, body)
        else:
            problems = _xsd_problems(self.xsd, body)
        if problems:
            raise errors.InvalidRequest("the XML body does not match the schema", extra={"errors": problems})


def _raise(err: errors.GatewayError) -> None:
    raise err


def _rejected(ctx, e: errors.PayloadRejected) -> errors.GatewayError:
    """What a scanner's PayloadRejected becomes: 413 for max_bytes, else 400 naming the limit."""
    if e.limit == "max_bytes":
        return errors.PayloadTooLarge("body larger than the protection's max_bytes")
    if ctx is not None:
        ctx.decision = f"threat_protection.{e.limit}"
    return errors.PayloadRejected(e.limit, e.offset, detail=f"limit exceeded: {e.limit}"
                                  if e.limit != "malformed" else "malformed document")


class _BodyScan:
    """Per-request scanning state: the JSON or XML scanner over one body, fed as it arrives."""

    __slots__ = ("policy", "ctx", "kind", "scanner", "active", "clean")

    def __init__(self, policy: ThreatPolicy, ctx, kind: str | None) -> None:
        self.policy = policy
        self.ctx = ctx
        self.kind = kind
        self.scanner = None
        self.active = True  # still scanning
        self.clean = True  # no violation recorded (monitor mode goes on reading after one)
        if kind is not None:
            self._open()

    def _open(self) -> None:
        # The regex rules run once, in block mode, over the accepted body (finish_regex): the
        # body is buffered before the upstream request anyway, and one block scan costs less
        # than a stream per request (benchmarks/README.md "Policy cost").
        p = self.policy
        if self.kind == "json":
            self.scanner = p._JsonScanner(p.json_limits)
        elif self.kind == "xml":
            self.scanner = p._XmlScanner(p.xml_limits)

    def feed(self, chunks: list[bytes], chunk: bytes) -> None:
        if self.kind is None:
            self.kind = self.policy._sniff(chunks)
            if self.kind is None:
                return  # only whitespace so far
            self._open()
            for earlier in chunks[:-1]:
                self._scan(earlier)
        self._scan(chunk)

    def _scan(self, chunk: bytes) -> None:
        # structure first, chunk by chunk: a DOCTYPE or a depth bomb is named for what it is
        # (allow_dtd, max_depth) at the byte that decides it; the rules run on the whole body
        if self.scanner is not None:
            try:
                ThreatPolicy._guard(self.ctx, self.scanner.feed, chunk)
            except errors.GatewayError:
                self.clean = False
                raise

    def finish(self) -> None:
        if self.scanner is not None:
            try:
                ThreatPolicy._guard(self.ctx, self.scanner.finish)
            except errors.GatewayError:
                self.clean = False
                raise

    def stop(self) -> None:
        self.active = False


def _load_xsd(path):
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def _xsd_problems(xsd, body: bytes) -> list[dict]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        doc = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return [{"path": "body", "message": "not well-formed"}]
    if xsd.validate(doc):
        return []
    # lxml's messages quote the offending values: report the element path and the error type
    # only, so the problem never echoes the payload
    return [{"path": e.path or f"line {e.line}", "message": e.type_name.lower()}
            for e in list(xsd.error_log)[:10]]


def build(api: Api, config: Config, shared: SharedState) -> ThreatPolicy | None:
    if api.threat_protection is None:
        return None
    body_limit = api.max_body_bytes if api.max_body_bytes is not None else config.limits.max_body_bytes
    return ThreatPolicy(api, api.threat_protection, body_limit, shared)
