"""The login page escapes everything it shows and carries no script."""

from __future__ import annotations

from fastgate.token_service import pages


def test_everything_shown_is_escaped():
    body = pages.login_page(client_name='<script>alert(1)</script>', scopes=['a"><img src=x>'],
                            request_blob='x"y', csrf="c&d", error="<b>", username='"><svg>').decode()
    assert "<script" not in body and "<img" not in body and "<svg" not in body and "<b>" not in body
    assert "&lt;script&gt;" in body and 'value="x&quot;y"' in body and 'value="c&amp;d"' in body
    names = dict(pages.HEADERS)
    assert names[b"x-frame-options"] == b"DENY" and b"frame-ancestors 'none'" in names[b"content-security-policy"]
    assert b"<script" not in pages.error_page("<script>")
