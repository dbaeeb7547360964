"""HTTP Digest (fastgate/policies/digest/policy.py): an RFC 7616 client computed here, a fake
clock for nonce ages, hypothesis for the auth-param parser."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastgate import errors
from fastgate.config.model import Api, Config, Upstream, User
from fastgate.context import RequestContext
from fastgate.credentials import hash_password
from fastgate.policies.digest import policy as digest
from fastgate.policies.digest.policy import DigestAuthenticator, NonceCounts, parse_auth_params
from fastgate.policies.shared import SharedState
from fastgate.policies.throttle import LoginThrottle

KEY = b"k" * 32


def h(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def ha1(user: str, password: str) -> str:
    return "sha256:" + h(f"{user}:fastgate:{password}")  # printf 'user:fastgate:pw' | sha256sum


ALICE = User(name="alice", password_hash=hash_password("x", n=2**10), digest_ha1=ha1("alice", "pw"),
             roles=("teacher",), claims={"email": "a@x"})
NOHA1 = User(name="carol", password_hash=hash_password("x", n=2**10))
QUOTY = User(name='q"u\\o', password_hash=hash_password("x", n=2**10), digest_ha1=ha1('q"u\\o', "pw"))


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Req:
    def __init__(self, headers=(), target: bytes = b"/orders/v1/items?a=1", method: bytes = b"GET"):
        self.method = method
        self.target = target
        self.headers = list(headers)


def ctx(ip: str = "203.0.113.7") -> RequestContext:
    return RequestContext("req-1", ip, "public", "https", None)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def answer(challenge: str, user: str = "alice", password: str = "pw", *, method: str = "GET",
           uri: str = "/orders/v1/items?a=1", nc: int = 1, cnonce: str = "0a4f113b",
           override: dict[str, str | None] | None = None) -> tuple[bytes, bytes]:
    """What an RFC 7616 client sends in reply to `challenge` (`override`: raw field text, or
    None to leave a field out)."""
    assert challenge.startswith("Digest ")
    c = parse_auth_params(challenge[len("Digest "):])
    nc_text = f"{nc:08x}"
    response = h(f"{h(f'{user}:fastgate:{password}')}:{c['nonce']}:{nc_text}:{cnonce}:auth:"
                 f"{h(f'{method}:{uri}')}")
    fields = {"username": quote(user), "realm": quote(c["realm"]), "uri": quote(uri),
              "algorithm": "SHA-256", "nonce": quote(c["nonce"]), "nc": nc_text,
              "cnonce": quote(cnonce), "qop": "auth", "response": quote(response),
              "opaque": quote(c["opaque"])}
    for k, v in (override or {}).items():
        if v is None:
            fields.pop(k, None)
        else:
            fields[k] = v
    text = ", ".join(f"{k}={v}" for k, v in fields.items())
    return (b"authorization", b"Digest " + text.encode())


class Setup:
    def __init__(self) -> None:
        self.clock = Clock()
        self.throttle = LoginThrottle(clock=self.clock)
        self.nonces = NonceCounts()
        self.auth = DigestAuthenticator([ALICE, NOHA1, QUOTY], nonce_key=KEY, throttle=self.throttle,
                                        nonces=self.nonces, clock=self.clock)

    def verify(self, header, req: Req | None = None, ip: str = "203.0.113.7"):
        req = req or Req()
        req.headers = [header]
        found = self.auth.find(ctx(ip), req)
        assert found is not None
        assert found.strip_headers == (b"authorization",)
        return asyncio.run(self.auth.verify(ctx(ip), req, found))


@pytest.fixture
def s():
    return Setup()


def test_challenge_format(s):
    c = s.auth.challenge()
    assert c.startswith('Digest realm="fastgate", qop="auth", algorithm=SHA-256, nonce="')
    p = parse_auth_params(c[len("Digest "):])
    assert set(p) == {"realm", "qop", "algorithm", "nonce", "opaque"}
    assert p["nonce"] != parse_auth_params(s.auth.challenge()[7:])["nonce"]  # fresh every time


def test_good_path(s):
    ident = s.verify(answer(s.auth.challenge()))
    assert ident.method == "digest" and ident.subject == "alice"
    assert ident.roles == frozenset({"teacher"}) and ident.claims == {"email": "a@x"}


def test_post_and_quoted_username(s):
    req = Req(method=b"POST", target=b"/x")
    assert s.verify(answer(s.auth.challenge(), 'q"u\\o', method="POST", uri="/x"), req).subject == 'q"u\\o'


def test_scheme_case_and_uppercase_hex(s):
    name, value = answer(s.auth.challenge())
    text = value.decode()
    resp = parse_auth_params(text[7:])["response"]
    value = b"DIGEST" + text[6:].replace(resp, resp.upper()).encode()
    assert s.verify((name, value)).subject == "alice"


@pytest.mark.parametrize("headers", [
    [],
    [(b"authorization", b"Basic YWxpY2U6cHc=")],
    [(b"authorization", b"Bearer x")],
])
def test_missing(s, headers):
    assert s.auth.find(ctx(), Req(headers)) is None


@pytest.mark.parametrize("override", [
    {"algorithm": "MD5"},
    {"algorithm": None},  # absent means MD5 (RFC 7616 §3.4)
    {"algorithm": "SHA-256-sess"},
    {"qop": "auth-int"},
    {"qop": None},
    {"realm": '"other"'},
    {"opaque": '"forged"'},
    {"opaque": None},
    {"nc": "1"},
    {"nc": "00000000"},
    {"nc": "0000000g"},
    {"response": '"abc"'},
    {"cnonce": '""'},
    {"userhash": "true"},
    {"username*": "UTF-8''alice"},
    {"nonce": '"short"'},
])
def test_refused_parameters(s, override):
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(answer(s.auth.challenge(), override=override))
    assert e.value.code == "invalid_credentials"
    assert any(n == "www-authenticate" and v.startswith("Digest ") for n, v in e.value.headers)


@pytest.mark.parametrize("value", [
    b"Digest",
    b"Digest ",
    b'Digest username="alice", username="bob"',
    b'Digest username="alice',
    b"Digest username=alice nonce=x",
    b"Digest =x",
    b'Digest username="a"x',
    b"Digest " + b"a=b, " * 2000,
])
def test_malformed(s, value):
    with pytest.raises(errors.InvalidCredentials):
        s.verify((b"authorization", value))


def test_duplicated_parameter_in_a_full_answer(s):
    name, value = answer(s.auth.challenge())
    with pytest.raises(errors.InvalidCredentials):
        s.verify((name, value + b', nc=00000002'))


def test_wrong_password_unknown_user_and_no_ha1(s):
    for user, pw in (("alice", "wrong"), ("mallory", "pw"), ("carol", "x")):
        with pytest.raises(errors.InvalidCredentials) as e:
            s.verify(answer(s.auth.challenge(), user, pw))
        assert e.value.detail == "invalid Digest credentials"
        assert "stale" not in e.value.headers[0][1]


def test_wrong_uri(s):
    with pytest.raises(errors.InvalidCredentials):  # answer computed for another target
        s.verify(answer(s.auth.challenge(), uri="/orders/v1/other"))
    with pytest.raises(errors.InvalidCredentials):  # uri right, but not this request's target
        s.verify(answer(s.auth.challenge(), uri="/orders/v1/items?a=1"), Req(target=b"/orders/v1/items"))


def test_wrong_method(s):
    with pytest.raises(errors.InvalidCredentials):
        s.verify(answer(s.auth.challenge(), method="GET"), Req(method=b"DELETE"))


def test_nonce_count_must_increase(s):
    c = s.auth.challenge()
    assert s.verify(answer(c, nc=1)).subject == "alice"
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(answer(c, nc=1))  # replayed
    assert "stale" not in e.value.headers[0][1]
    assert s.verify(answer(c, nc=2, cnonce="other")).subject == "alice"
    assert s.verify(answer(c, nc=5)).subject == "alice"
    with pytest.raises(errors.InvalidCredentials):
        s.verify(answer(c, nc=3))  # below the highest seen
    other = s.auth.challenge()
    assert s.verify(answer(other, nc=1)).subject == "alice"  # nc is per nonce


def test_stale_nonce_gets_a_fresh_challenge(s):
    c = s.auth.challenge()
    assert s.verify(answer(c, nc=1)).subject == "alice"
    s.clock.t += digest.NONCE_TTL + 1
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(answer(c, nc=2))
    (name, value), = e.value.headers
    assert name == "www-authenticate" and value.endswith(", stale=true")
    assert e.value.detail == "stale nonce"
    fresh = value.removesuffix(", stale=true")
    assert s.verify(answer(fresh)).subject == "alice"


def test_stale_is_only_said_for_a_right_response(s):
    c = s.auth.challenge()
    s.clock.t += digest.NONCE_TTL + 1
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(answer(c, password="wrong"))
    assert "stale" not in e.value.headers[0][1]


def test_nonce_from_the_future_is_refused(s):
    s.clock.t += 3600
    c = s.auth.challenge()
    s.clock.t -= 3600
    with pytest.raises(errors.InvalidCredentials):
        s.verify(answer(c))


def test_tampered_nonce(s):
    c = s.auth.challenge()
    nonce = parse_auth_params(c[7:])["nonce"]
    raw = bytearray(base64.urlsafe_b64decode(nonce + "=="))
    raw[3] ^= 1  # move the timestamp: the HMAC no longer matches
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(answer(c.replace(nonce, forged)))  # a response computed for the forged nonce
    assert "stale" not in e.value.headers[0][1]
    assert "not issued" in e.value.log_detail


def test_nonce_signed_with_another_key_is_refused(s):
    elsewhere = DigestAuthenticator([ALICE], nonce_key=b"x" * 32, clock=s.clock)
    c = elsewhere.challenge()
    # same opaque as ours, so only the nonce signature differs
    ours = parse_auth_params(s.auth.challenge()[7:])["opaque"]
    c = c.replace(parse_auth_params(c[7:])["opaque"], ours)
    with pytest.raises(errors.InvalidCredentials):
        s.verify(answer(c))


def test_non_canonical_nonce_encoding_is_refused(s):
    c = s.auth.challenge()
    nonce = parse_auth_params(c[7:])["nonce"]
    # 40 bytes = 54 base64 chars: the last one carries 2 data bits and 4 zero bits; set one
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(nonce[-1]) ^ 1]
    odd = nonce[:-1] + last
    assert base64.urlsafe_b64decode(odd + "==") == base64.urlsafe_b64decode(nonce + "==")
    with pytest.raises(errors.InvalidCredentials):
        s.verify(answer(c.replace(nonce, odd)))


def test_failures_throttle_and_429(s):
    for i in range(5):
        with pytest.raises(errors.InvalidCredentials):
            s.verify(answer(s.auth.challenge(), password=f"guess{i}"), ip=f"198.51.100.{i}")
    with pytest.raises(errors.RateLimited) as e:
        s.verify(answer(s.auth.challenge()))
    assert ("retry-after", "30") in e.value.headers
    s.clock.t += 31
    assert s.verify(answer(s.auth.challenge())).subject == "alice"


def test_nonce_table_eviction_never_reopens_a_replay():
    t = NonceCounts(max_entries=2, ttl=300)
    assert t.observe(b"a", 100, 1, now=150) == "ok"
    assert t.observe(b"b", 101, 1, now=150) == "ok"
    assert t.observe(b"c", 102, 1, now=150) == "ok"  # evicts a: the floor rises to 100
    assert len(t) == 2 and t.floor == 100
    assert t.observe(b"a", 100, 2, now=150) == "evicted"  # answered stale, not accepted
    assert t.observe(b"d", 103, 1, now=150) == "ok"  # newer than the floor
    assert t.observe(b"d", 103, 1, now=150) == "replay"


def test_evicting_expired_nonces_does_not_raise_the_floor():
    t = NonceCounts(max_entries=1, ttl=300)
    t.observe(b"a", 100, 1, now=100)
    t.observe(b"b", 500, 1, now=500)  # a is long expired
    assert t.floor == float("-inf")


def test_evicted_nonce_gets_stale(s):
    s.nonces.max_entries = 1
    c1 = s.auth.challenge()
    assert s.verify(answer(c1)).subject == "alice"
    s.clock.t += 1
    assert s.verify(answer(s.auth.challenge())).subject == "alice"  # evicts c1's record
    with pytest.raises(errors.InvalidCredentials) as e:
        s.verify(answer(c1))  # the replay of c1's nc=1
    assert e.value.headers[0][1].endswith("stale=true")


def test_build_shares_the_nonce_table_and_key_across_reloads():
    shared = SharedState(nonce_key=KEY)
    api = Api(name="orders", base_path="/orders", upstream=Upstream(urls=()), authentication=("digest",))
    config = Config(source=Path("gw.yaml"), listeners=(), apis=(api,), users=(ALICE,))
    a = digest.build(api, config, shared)
    c = a.challenge()
    req = Req([answer(c)])
    assert asyncio.run(a.verify(ctx(), req, a.find(ctx(), req))).subject == "alice"
    b = digest.build(api, config, shared)  # SIGHUP
    with pytest.raises(errors.InvalidCredentials):  # the replay is still caught
        asyncio.run(b.verify(ctx(), req, b.find(ctx(), req)))


def test_ha1_recipe_in_the_docstring():
    assert "printf '%s' 'alice:fastgate:password' | sha256sum" in digest.__doc__
    assert ha1("alice", "password")[7:] == hashlib.sha256(b"alice:fastgate:password").hexdigest()


# ---------------------------------------------------------------- the auth-param parser
def test_parse_auth_params_examples():
    assert parse_auth_params('a=b, C="d e", f="g\\"h\\\\i",g=""') == {
        "a": "b", "c": "d e", "f": 'g"h\\i', "g": ""}
    assert parse_auth_params("a = b ,, c=d,") == {"a": "b", "c": "d"}
    assert parse_auth_params("a=b, A=c") is None  # duplicate, case-insensitively
    for bad in ("", "a", "a=", "a=b c=d", 'a="b', 'a="b"c', "a=b;c=d", 'a="\x00"', ",a=b"):
        assert parse_auth_params(bad) is None, bad


_tokens = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz", min_size=1,
                  max_size=12)
_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                         blacklist_characters="\x7f"), max_size=20)


@given(st.dictionaries(_tokens, st.one_of(_tokens.map(lambda t: ("token", t)),
                                          _values.map(lambda v: ("quoted", v))),
                       min_size=1, max_size=8),
       st.sampled_from([",", ", ", " , ", ",\t"]))
def test_parse_auth_params_round_trip(params, sep):
    text = sep.join(f"{k}={v if kind == 'token' else quote(v)}" for k, (kind, v) in params.items())
    assert parse_auth_params(text) == {k: v for k, (_, v) in params.items()}


@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60))
def test_parse_auth_params_never_raises(text):
    result = parse_auth_params(text)
    assert result is None or isinstance(result, dict)
