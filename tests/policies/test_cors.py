"""CORS policy unit: preflights answered by the gateway, headers on actual responses, exact
origin matching (attacks on the matcher included), never a wildcard with credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fastgate.config.model import Cors
from fastgate.policies.cors.policy import VARY_ORIGIN, VARY_PREFLIGHT, CorsPolicy, build

APP = "https://app.example.com"


@dataclass
class Req:
    method: bytes = b"GET"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def preflight_req(
    origin: str | None = APP, method: str = "POST", headers: str | None = None
) -> Req:
    h = []
    if origin is not None:
        h.append((b"origin", origin.encode("latin-1")))
    h.append((b"access-control-request-method", method.encode()))
    if headers is not None:
        h.append((b"access-control-request-headers", headers.encode()))
    return Req(b"OPTIONS", h)


def actual(origin: str | None = APP, method: bytes = b"GET") -> Req:
    return Req(method, [(b"origin", origin.encode("latin-1"))] if origin is not None else [])


POLICY = CorsPolicy(
    Cors(
        origins=(APP, "http://localhost:3000"),  # as the loader stores them (parse_origin)
        methods=("GET", "POST", "DELETE"),
        headers=("authorization", "content-type", "x-request-tag"),
        expose_headers=("x-total-count", "ratelimit-remaining"),
        credentials=True,
        max_age=600.0,
    )
)
WILDCARD = CorsPolicy(Cors(origins=("*",), methods=("GET",)))


def test_build_returns_none_without_cors() -> None:
    class Api:
        cors = None

    assert build(Api(), None, None) is None  # type: ignore[arg-type]

    class WithCors:
        cors = Cors(origins=(APP,))

    assert isinstance(build(WithCors(), None, None), CorsPolicy)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ preflight


def test_allowed_preflight() -> None:
    assert POLICY.preflight(preflight_req(headers="Authorization, Content-Type")) == (
        204,
        [
            (b"access-control-allow-origin", APP.encode()),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", b"GET, POST, DELETE"),
            (b"access-control-allow-headers", b"authorization, content-type, x-request-tag"),
            (b"access-control-max-age", b"600"),
            VARY_PREFLIGHT,
        ],
    )


def test_wildcard_preflight_without_credentials() -> None:
    assert WILDCARD.preflight(preflight_req("https://anyone.example", "GET")) == (
        204,
        [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", b"GET"),
            (b"access-control-max-age", b"600"),
            VARY_PREFLIGHT,
        ],
    )


@pytest.mark.parametrize(
    "req",
    [
        Req(b"GET", [(b"origin", APP.encode()), (b"access-control-request-method", b"POST")]),
        Req(b"OPTIONS", [(b"origin", APP.encode())]),  # a plain OPTIONS with an Origin
        Req(b"OPTIONS", [(b"access-control-request-method", b"POST")]),  # no Origin
        Req(b"OPTIONS", []),
        Req(b"options", [(b"origin", APP.encode()), (b"access-control-request-method", b"POST")]),
    ],
)
def test_not_a_preflight_passes_on(req: Req) -> None:
    assert POLICY.preflight(req) is None


@pytest.mark.parametrize(
    "req",
    [
        preflight_req(method="PUT"),  # not listed
        preflight_req(method="post"),  # methods are case-sensitive (RFC 9110 §9.1)
        preflight_req(method="PATCH"),
        preflight_req(headers="x-evil"),
        preflight_req(headers="authorization, x-evil"),
        preflight_req(headers="authorization,,bad header"),
        preflight_req(headers="cookie"),
        preflight_req("https://evil.example"),
        preflight_req("null"),
        preflight_req(APP + "/"),
        Req(
            b"OPTIONS",
            [
                (b"origin", APP.encode()),
                (b"origin", b"https://evil.example"),
                (b"access-control-request-method", b"GET"),
            ],
        ),
        Req(
            b"OPTIONS",
            [
                (b"origin", APP.encode()),
                (b"access-control-request-method", b"GET"),
                (b"access-control-request-method", b"GET"),
            ],
        ),
    ],
)
def test_refused_preflight(req: Req) -> None:
    assert POLICY.preflight(req) == (403, [])


@pytest.mark.parametrize(
    "headers",
    [
        "AUTHORIZATION",
        "authorization,content-type",
        "  x-request-tag ,  authorization  ",
        "accept, accept-language, content-language",  # CORS-safelisted: always allowed
        "",
    ],
)
def test_requested_headers_case_insensitive_and_safelisted(headers: str) -> None:
    assert POLICY.preflight(preflight_req(headers=headers))[0] == 204


def test_requested_headers_over_several_lines() -> None:
    req = preflight_req(headers="authorization")
    req.headers.append((b"access-control-request-headers", b"x-request-tag"))
    assert POLICY.preflight(req)[0] == 204
    req.headers.append((b"access-control-request-headers", b"x-other"))
    assert POLICY.preflight(req) == (403, [])


def test_content_type_needs_listing() -> None:
    """Browsers name content-type in a preflight only for non-safelisted values (JSON)."""
    bare = CorsPolicy(Cors(origins=(APP,), methods=("POST",)))
    assert bare.preflight(preflight_req(headers="content-type")) == (403, [])
    ok = bare.preflight(preflight_req(headers="accept"))
    assert ok is not None and ok[0] == 204
    assert not any(name == b"access-control-allow-headers" for name, _ in ok[1])


def test_wildcard_never_allows_null() -> None:
    assert WILDCARD.preflight(preflight_req("null", "GET")) == (403, [])
    assert WILDCARD.response_headers(actual("null")) == [VARY_ORIGIN]


def test_max_age_is_whole_seconds() -> None:
    policy = CorsPolicy(Cors(origins=(APP,), max_age=90.5))
    assert (b"access-control-max-age", b"90") in policy.preflight(preflight_req(method="GET"))[1]


# ------------------------------------------------------------------------ actual responses


def test_allowed_actual_response() -> None:
    assert POLICY.response_headers(actual()) == [
        (b"access-control-allow-origin", APP.encode()),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"x-total-count, ratelimit-remaining"),
        VARY_ORIGIN,
    ]


def test_wildcard_actual_response() -> None:
    assert WILDCARD.response_headers(actual("https://x.example")) == [
        (b"access-control-allow-origin", b"*"),
        VARY_ORIGIN,
    ]


def test_no_origin_gets_only_vary() -> None:
    assert POLICY.response_headers(actual(None)) == [VARY_ORIGIN]
    assert WILDCARD.response_headers(actual(None)) == [VARY_ORIGIN]


ATTACKS = [
    "https://app.example.com.evil.com",
    "https://evilapp.example.com",
    "https://evil.com/app.example.com",
    "https://app.example.com/",
    "https://app.example.com/path",
    "https://app.example.com:8443",
    "http://app.example.com",
    "https://app.example.com@evil.com",
    "https://evil.com#app.example.com",
    "https://evil.com?app.example.com",
    "https://app.example.co",
    "https://app.example.comm",
    "https://app.example.com.",
    "https://app.example.com, https://evil.com",
    "https://app.example.com https://evil.com",
    "https://app.example.com\r\nx-injected: 1",
    "https://app.example.com\x00",
    "https://app.ex\xe4mple.com",
    "null",
    "NULL",
    "*",
    "",
    "app.example.com",
    "//app.example.com",
    "http://localhost:3001",
    "http://localhost",
    "http://127.0.0.1:3000",
]


@pytest.mark.parametrize("origin", ATTACKS)
def test_attacks_on_the_origin_match(origin: str) -> None:
    assert POLICY.response_headers(actual(origin)) == [VARY_ORIGIN]
    assert POLICY.preflight(preflight_req(origin, "GET")) == (403, [])


@pytest.mark.parametrize(
    "origin",
    [
        "HTTPS://APP.EXAMPLE.COM",
        "https://App.Example.Com",
        "https://app.example.com:443",
        "http://LOCALHOST:3000",
    ],
)
def test_case_and_default_port_variants_match_and_are_echoed(origin: str) -> None:
    headers = POLICY.response_headers(actual(origin))
    assert headers[0] == (b"access-control-allow-origin", origin.encode())
    assert POLICY.preflight(preflight_req(origin, "GET"))[0] == 204


def test_multiple_origin_headers_are_refused() -> None:
    req = Req(b"GET", [(b"origin", APP.encode()), (b"origin", APP.encode())])
    assert POLICY.response_headers(req) == [VARY_ORIGIN]


def test_credentials_never_with_star() -> None:
    """The allowed origin is echoed, never "*", when credentials are on."""
    for origin in (APP, "http://localhost:3000"):
        headers = dict(POLICY.response_headers(actual(origin)))
        assert headers[b"access-control-allow-origin"] == origin.encode()
        assert headers[b"access-control-allow-credentials"] == b"true"


def test_vary_on_every_actual_response() -> None:
    for origin in (APP, "https://evil.example", None):
        assert VARY_ORIGIN in POLICY.response_headers(actual(origin))
