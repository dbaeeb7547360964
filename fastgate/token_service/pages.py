"""The login and consent page of `/oauth2/authorize`: server-rendered HTML, no JavaScript.

Invariant: every value shown or put in a field is HTML-escaped; the page carries a CSRF token
bound to a cookie (double submit, HMAC under the service's key) and the signed authorization
request, and its headers forbid framing, caching and referrers.
"""

from __future__ import annotations

from html import escape

HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-frame-options", b"DENY"),  # RFC 7034; clickjacking of the consent button
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]

_STYLE = ("body{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}"
          "label{display:block;margin:.6em 0}input[type=text],input[type=password]{width:100%}"
          ".error{color:#a00}ul{padding-left:1.2em}")


def login_page(*, client_name: str, scopes: list[str], request_blob: str, csrf: str,
               error: str | None = None, username: str = "") -> bytes:
    items = "".join(f"<li>{escape(s)}</li>" for s in scopes) or "<li>(no scopes)</li>"
    err = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - fastgate</title>
<style>{_STYLE}</style></head>
<body><h1>Sign in</h1>
<p><strong>{escape(client_name)}</strong> asks for access to:</p><ul>{items}</ul>
{err}<form method="post" action="/oauth2/authorize">
<input type="hidden" name="request" value="{escape(request_blob)}">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label>User <input type="text" name="username" value="{escape(username)}" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form></body></html>
""".encode()


def error_page(message: str) -> bytes:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization error - fastgate</title>
<style>{_STYLE}</style></head>
<body><h1>Authorization error</h1><p class="error">{escape(message)}</p></body></html>
""".encode()
