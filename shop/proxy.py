"""Who the client is, behind the proxies we trust.

``TRUSTED_PROXY_COUNT`` says how many proxies (load balancer, CDN …) stand in front
and append to ``X-Forwarded-For`` / ``X-Forwarded-Proto``. With N > 0 werkzeug's
``ProxyFix`` takes the address and scheme N hops from the right — the part our own
proxies wrote; anything further left came from the client and is never believed.
With 0 (the default) the headers are ignored: anyone can send them.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix


def trust_proxies(app: Flask) -> None:
    hops = app.config["TRUSTED_PROXY_COUNT"]
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def client_address() -> str:
    """The client's address as our trusted proxies saw it: rate limits and logs key on it."""
    return request.remote_addr or "unknown"
