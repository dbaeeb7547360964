"""Odd and hostile HTTP/1.x heads for the differential tests of fastgate._native.httpfast vs h11.

Each entry is (label, raw bytes, fast verdict, h11 verdict). The fast verdict is for the head
that find_head_end() cuts from the raw bytes: FAST = the fast path must parse it, NONE = it must
decline. The h11 verdict pins what h11 0.16 does with the same bytes: OK, ERROR or INCOMPLETE.
Invariant kept by the tests: FAST never pairs with anything but OK.
"""

FAST = "fast"
NONE = "none"
OK = "ok"
ERROR = "error"
INCOMPLETE = "incomplete"

_H = b"Host: example.com\r\n"

BROWSER_HEAD = (
    b"GET /api/v1/orders/12345?expand=items HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: application/json, text/plain, */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Request-Id: 7f9c2ba4-e88f-11ee-9c5f-0242ac120002\r\n"
    b"\r\n"
)

CURL_HEAD = b"GET /status HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"


def _many(n: int) -> bytes:
    return b"GET / HTTP/1.1\r\n" + _H + b"".join(b"X-H%d: v\r\n" % i for i in range(n - 1)) + b"\r\n"


REQUESTS: list[tuple[str, bytes, str, str]] = [
    # --- plain, must take the fast path ---------------------------------------------------
    ("minimal 1.1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", FAST, OK),
    ("minimal 1.0 no host", b"GET / HTTP/1.0\r\n\r\n", FAST, OK),
    ("1.0 keep-alive token still closes", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", FAST, OK),
    ("curl", CURL_HEAD, FAST, OK),
    ("browser", BROWSER_HEAD, FAST, OK),
    ("post with body", b"POST /o HTTP/1.1\r\n" + _H + b"Content-Length: 13\r\n\r\n{\"a\": \"bcd\"}\n", FAST, OK),
    ("pipelined second request", b"GET /a HTTP/1.1\r\n" + _H + b"\r\nGET /b HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("content-length 0", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 0\r\n\r\n", FAST, OK),
    ("content-length leading zeros", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 007\r\n\r\n", FAST, OK),
    ("content-length 18 digits", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 999999999999999999\r\n\r\n", FAST, OK),
    ("content-length OWS", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: \t 5 \t\r\n\r\n", FAST, OK),
    ("content-length in 1.0", b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", FAST, OK),
    ("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", FAST, OK),
    ("utf-8 in value (obs-text)", b"GET / HTTP/1.1\r\n" + _H + "X-Name: J\u00fcrgen \u2603\r\n\r\n".encode(), FAST, OK),
    ("obs-text only value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: \x80\xff\r\n\r\n", FAST, OK),
    ("%00 in target", b"GET /a%00b HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("dot-dot target", b"GET /../../etc/passwd HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("fragment in target", b"GET /a#frag HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("double slash target", b"GET //evil.example/x HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("every vchar in target", b"GET /" + bytes(range(0x21, 0x7F)) + b" HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("tab inside value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\tb\r\n\r\n", FAST, OK),
    ("tabs as OWS", b"GET / HTTP/1.1\r\nHost:\tx\t\r\n\r\n", FAST, OK),
    ("trailing whitespace trimmed", b"GET / HTTP/1.1\r\n" + _H + b"X-A: v  \t \r\n\r\n", FAST, OK),
    ("whitespace-only value", b"GET / HTTP/1.1\r\n" + _H + b"X-A:  \t \r\n\r\n", FAST, OK),
    ("no OWS after colon", b"GET / HTTP/1.1\r\nHost:x\r\nX-A:b\r\n\r\n", FAST, OK),
    ("lowercase method", b"get / HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("token method with dash", b"M-SEARCH / HTTP/1.1\r\n" + _H + b"\r\n", FAST, OK),
    ("all tchar name", b"GET / HTTP/1.1\r\n" + _H + b"!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", FAST, OK),
    ("underscore name", b"GET / HTTP/1.1\r\n" + _H + b"X_Forwarded_For: 1.2.3.4\r\n\r\n", FAST, OK),
    ("connection close", b"GET / HTTP/1.1\r\n" + _H + b"Connection: close\r\n\r\n", FAST, OK),
    ("connection list with CLOSE", b"GET / HTTP/1.1\r\n" + _H + b"Connection: Keep-Alive, CLOSE\r\n\r\n", FAST, OK),
    ("connection 'closed' is not close", b"GET / HTTP/1.1\r\n" + _H + b"Connection: closed\r\n\r\n", FAST, OK),
    ("two connection headers", b"GET / HTTP/1.1\r\n" + _H + b"Connection: a\r\nConnection: b ,close\r\n\r\n", FAST, OK),
    ("expect 100-continue", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n", FAST, OK),
    ("expect mixed case in list", b"POST / HTTP/1.1\r\n" + _H + b"Expect: foo, 100-Continue\r\n\r\n", FAST, OK),
    ("expect ignored in 1.0", b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", FAST, OK),
    ("expect near miss", b"POST / HTTP/1.1\r\n" + _H + b"Expect: 100-continuex\r\n\r\n", FAST, OK),
    ("cookie with quotes", b"GET / HTTP/1.1\r\n" + _H + b'Cookie: a="b c"; d=e\r\n\r\n', FAST, OK),
    ("128 headers", _many(128), FAST, OK),
    ("8 KiB value", b"GET / HTTP/1.1\r\n" + _H + b"X-Big: " + b"a" * 8192 + b"\r\n\r\n", FAST, OK),
    ("host not first", b"GET / HTTP/1.1\r\nAccept: */*\r\nHOST: x\r\n\r\n", FAST, OK),
    ("TE header (not Transfer-Encoding)", b"GET / HTTP/1.1\r\n" + _H + b"TE: trailers\r\n\r\n", FAST, OK),
    # --- h11 accepts, the fast path declines (h11 decides) ---------------------------------
    ("content-length 19 digits", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 1000000000000000000\r\n\r\n", NONE, OK),
    ("content-length list same", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5, 5\r\n\r\n", NONE, OK),
    ("duplicate content-length same", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", NONE, OK),
    ("transfer-encoding chunked", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n", NONE, OK),
    ("TE uppercase CHUNKED", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: CHUNKED\r\n\r\n", NONE, OK),
    ("CL + TE (smuggling shape)", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", NONE, OK),
    ("TE + CL (smuggling shape)", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", NONE, OK),
    ("TE obs-folded", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding:\r\n chunked\r\n\r\n", NONE, OK),
    ("bare LF lines", b"GET / HTTP/1.1\nHost: x\n\n", NONE, OK),
    ("LF inside a value splits it", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\nX-B: b\r\n\r\n", NONE, OK),
    ("request line LF only", b"GET / HTTP/1.1\n" + _H + b"\r\n", NONE, OK),
    ("ends LF LF", b"GET / HTTP/1.1\r\nHost: x\r\n\n", NONE, OK),
    ("ends LF CR LF", b"GET / HTTP/1.1\r\nHost: x\n\r\n", NONE, OK),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\r\n  b\r\n\r\n", NONE, OK),
    ("obs-fold with tab", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\r\n\tb\r\n\r\n", NONE, OK),
    ("absolute-form target", b"GET http://example.com/ HTTP/1.1\r\n" + _H + b"\r\n", NONE, OK),
    ("authority-form CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", NONE, OK),
    ("CONNECT origin-form", b"CONNECT / HTTP/1.1\r\n" + _H + b"\r\n", NONE, OK),
    ("connect lowercase", b"connect / HTTP/1.1\r\n" + _H + b"\r\n", NONE, OK),
    ("asterisk-form", b"OPTIONS * HTTP/1.1\r\n" + _H + b"\r\n", NONE, OK),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\n" + _H + b"\r\n", NONE, OK),
    ("HTTP/0.9 version", b"GET / HTTP/0.9\r\n\r\n", NONE, OK),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\n" + _H + b"\r\n", NONE, OK),
    ("upgrade websocket", b"GET /ws HTTP/1.1\r\n" + _H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", NONE, OK),
    ("h2c upgrade", b"GET / HTTP/1.1\r\n" + _H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", NONE, OK),
    ("CTL 0x01 in value", b"GET / HTTP/1.1\r\n" + _H + b"Cookie: a=\x01b\r\n\r\n", NONE, OK),
    ("DEL in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\x7fb\r\n\r\n", NONE, OK),
    ("0x1c in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\x1cb\r\n\r\n", NONE, OK),
    ("ESC in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: \x1b[31mred\r\n\r\n", NONE, OK),
    ("129 headers", _many(129), NONE, OK),
    # --- h11 rejects: the fast path must decline ------------------------------------------
    ("content-length plus sign", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: +5\r\n\r\n", NONE, ERROR),
    ("content-length minus", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: -1\r\n\r\n", NONE, ERROR),
    ("content-length hex", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 0x10\r\n\r\n", NONE, ERROR),
    ("content-length empty", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length:\r\n\r\n", NONE, ERROR),
    ("content-length inner space", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5 5\r\n\r\n", NONE, ERROR),
    ("content-length list differs", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5, 6\r\n\r\n", NONE, ERROR),
    ("duplicate content-length differs", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", NONE, ERROR),
    ("content-length 21 digits", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 100000000000000000000\r\n\r\n", NONE, ERROR),
    ("content-length space before colon", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length : 5\r\n\r\n", NONE, ERROR),
    ("transfer-encoding xchunked", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: xchunked\r\n\r\n", NONE, ERROR),
    ("transfer-encoding chunked, identity", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked , identity\r\n\r\n", NONE, ERROR),
    ("transfer-encoding twice", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", NONE, ERROR),
    ("transfer-encoding space before colon", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding : chunked\r\n\r\n", NONE, ERROR),
    ("transfer-encoding gzip", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", NONE, ERROR),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", NONE, ERROR),
    ("tab before colon", b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", NONE, ERROR),
    ("NUL in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\x00b\r\n\r\n", NONE, ERROR),
    ("bare CR in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\rb\r\n\r\n", NONE, ERROR),
    ("bare CR at line end", b"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", NONE, ERROR),
    ("VT in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\x0bb\r\n\r\n", NONE, ERROR),
    ("FF in value", b"GET / HTTP/1.1\r\n" + _H + b"X-A: a\x0cb\r\n\r\n", NONE, ERROR),
    ("obs-fold first line", b"GET / HTTP/1.1\r\n x: y\r\n" + _H + b"\r\n", NONE, ERROR),
    ("double space after method", b"GET  / HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("double space before version", b"GET /  HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("trailing space after version", b"GET / HTTP/1.1 \r\n" + _H + b"\r\n", NONE, ERROR),
    ("tab as separator", b"GET\t/ HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("lowercase http", b"GET / http/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("HTTP/2 without minor", b"GET / HTTP/2\r\n" + _H + b"\r\n", NONE, ERROR),
    ("HTTP/10.0", b"GET / HTTP/10.0\r\n" + _H + b"\r\n", NONE, ERROR),
    ("no version (0.9 style)", b"GET /\r\n\r\n", NONE, ERROR),
    ("missing host 1.1", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", NONE, ERROR),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NONE, ERROR),
    ("two hosts same value", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", NONE, ERROR),
    ("two hosts case differs", b"GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n", NONE, ERROR),
    ("two hosts in 1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", NONE, ERROR),
    ("non-ASCII in name", b"GET / HTTP/1.1\r\n" + _H + "X-\u00fc: v\r\n".encode() + b"\r\n", NONE, ERROR),
    ("non-ASCII in target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("NUL in target", b"GET /a\x00b HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("space in target", b"GET /a b HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("DEL in target", b"GET /a\x7f HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("empty header name", b"GET / HTTP/1.1\r\n" + _H + b": v\r\n\r\n", NONE, ERROR),
    ("no colon", b"GET / HTTP/1.1\r\n" + _H + b"X-A v\r\n\r\n", NONE, ERROR),
    ("separator in name", b"GET / HTTP/1.1\r\n" + _H + b"X/A: v\r\n\r\n", NONE, ERROR),
    ("brace in name", b"GET / HTTP/1.1\r\n" + _H + b"X{A}: v\r\n\r\n", NONE, ERROR),
    ("leading CRLF", b"\r\nGET / HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("leading LF", b"\nGET / HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("leading space", b" GET / HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("bad method char", b"G(ET / HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("empty method", b" / HTTP/1.1\r\n" + _H + b"\r\n", NONE, ERROR),
    ("response line as request", b"HTTP/1.1 200 OK\r\n" + _H + b"\r\n", NONE, ERROR),
    ("TLS client hello bytes", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", NONE, ERROR),
    # --- not complete: no blank line yet -----------------------------------------------------
    ("CR CR LF is no blank line", b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", NONE, INCOMPLETE),
    ("no blank line", b"GET / HTTP/1.1\r\nHost: x\r\n", NONE, INCOMPLETE),
    ("half a head", b"GET / HTTP/1.1\r\nHo", NONE, INCOMPLETE),
]

RESPONSES: list[tuple[str, bytes, str, str]] = [
    ("200 with length", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", FAST, OK),
    ("no reason", b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", FAST, OK),
    ("empty reason", b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", FAST, OK),
    ("reason kept byte-exact", b"HTTP/1.1 404 Not  Found \t\r\nContent-Length: 0\r\n\r\n", FAST, OK),
    ("reason obs-text", b"HTTP/1.1 200 \xc3\x9cberall OK\r\n\r\n", FAST, OK),
    ("1.0 response", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", FAST, OK),
    ("no framing: read to close", b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", FAST, OK),
    ("204", b"HTTP/1.1 204 No Content\r\n\r\n", FAST, OK),
    ("304 with length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n", FAST, OK),
    ("599", b"HTTP/1.1 599 Whatever\r\n\r\n", FAST, OK),
    ("connection close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", FAST, OK),
    ("two set-cookie", b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", FAST, OK),
    ("two host headers are fine here", b"HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n", FAST, OK),
    ("upgrade header on 200", b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n", FAST, OK),
    ("100 continue", b"HTTP/1.1 100 Continue\r\n\r\n", NONE, OK),
    ("101 without an upgrade request", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", NONE, ERROR),
    ("600", b"HTTP/1.1 600 Odd\r\n\r\n", NONE, OK),
    ("999", b"HTTP/1.1 999 Odd\r\n\r\n", NONE, OK),
    ("HTTP/2.0 status line", b"HTTP/2.0 200 OK\r\n\r\n", NONE, OK),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", NONE, OK),
    ("chunked plus length", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", NONE, OK),
    ("LF lines", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", NONE, OK),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", NONE, OK),
    ("CTL in reason", b"HTTP/1.1 200 O\x01K\r\n\r\n", NONE, OK),
    ("content-length list same", b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", NONE, OK),
    ("099", b"HTTP/1.1 099 Low\r\n\r\n", NONE, ERROR),
    ("two digit status", b"HTTP/1.1 20 OK\r\n\r\n", NONE, ERROR),
    ("four digit status", b"HTTP/1.1 2000 OK\r\n\r\n", NONE, ERROR),
    ("HTTP/2 no minor", b"HTTP/2 200 OK\r\n\r\n", NONE, ERROR),
    ("lowercase http", b"http/1.1 200 OK\r\n\r\n", NONE, ERROR),
    ("double space", b"HTTP/1.1  200 OK\r\n\r\n", NONE, ERROR),
    ("NUL in reason", b"HTTP/1.1 200 O\x00K\r\n\r\n", NONE, ERROR),
    ("bare CR in reason", b"HTTP/1.1 200 O\rK\r\n\r\n", NONE, ERROR),
    ("conflicting lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", NONE, ERROR),
    ("bad transfer-encoding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", NONE, ERROR),
    ("space before colon", b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", NONE, ERROR),
    ("request line as response", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", NONE, ERROR),
]
