"""RequestContext: everything one request carries through the pipeline.

Invariant: per-request state lives only here (policies' compiled config is shared and immutable);
__slots__ keeps it small and fast to create on the hot path.
"""

from __future__ import annotations

import time


class RequestContext:
    __slots__ = (
        "request_id",
        "client_ip",
        "listener",
        "scheme",
        "peer_cert",
        "method",
        "target",
        "path",
        "query",
        "http_version",
        "headers",
        "host",
        "route",
        "upstream_path",
        "identity",
        "status",
        "code",
        "decision",
        "bytes_in",
        "bytes_out",
        "started",
        "upstream_started",
        "upstream_ms",
        "rate_decision",
        "log_detail",
        "cors_headers",
        "charges",
    )

    def __init__(self, request_id: str, client_ip: str, listener: str, scheme: str, peer_cert) -> None:
        self.request_id = request_id
        self.client_ip = client_ip
        self.listener = listener
        self.scheme = scheme
        self.peer_cert = peer_cert
        self.method = ""
        self.target = ""
        self.path = ""
        self.query = ""
        self.http_version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.host = ""
        self.route = None
        self.upstream_path = ""
        self.identity = None
        self.status = 0
        self.code = None
        self.decision = None
        self.charges = ()  # bandwidth quotas to charge once the response is done
        self.bytes_in = 0
        self.bytes_out = 0
        self.started = time.perf_counter()
        self.upstream_started = 0.0
        self.upstream_ms = None
        self.rate_decision = None
        self.log_detail = None
        self.cors_headers: list[tuple[bytes, bytes]] | None = None
