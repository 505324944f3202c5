"""Security headers on every response (OWASP API8), as one pure-ASGI middleware.

Three Content-Security-Policies, by path:

- the web client (everything outside ``/v1`` and the docs): scripts, styles, fonts and requests
  from this origin only, no inline script or style, images also from ``data:``/``blob:`` (the
  client shows generated PNGs that way), no plugins, no ``<base>``, never framed;
- the API (``/v1/...``): nothing may load except images and inline style, inside ``sandbox``.
  A stored report's HTML (``/v1/reports/{id}/html``) is served from here, so opened directly it
  lands in an opaque origin that cannot run script or read the gateway's storage;
- FastAPI's ``/docs`` and ``/redoc``: the one place with a third-party script (Swagger UI and
  ReDoc from cdn.jsdelivr.net). Their inline boot script is allowed by its SHA-256, computed from
  the page actually sent, so nothing else inline can run there either.

Plus ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (for browsers without
``frame-ancestors``), ``Referrer-Policy: no-referrer``, and same-origin opener/resource policies.
A route that sets its own header keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
API_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox"
)
CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    "default-src 'none'; script-src {scripts}; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
COMMON = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
_INLINE = re.compile(rb"<script>(.*?)</script>", re.S)


def csp_for(path: str) -> str:
    if path == "/v1" or path.startswith("/v1/"):
        return API_CSP
    return APP_CSP


def docs_csp(html: bytes) -> str:
    """The docs page's policy: the CDN plus the exact inline scripts of ``html``, by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE.finditer(html)
    ]
    return DOCS_CSP.format(scripts=" ".join(["'self'", CDN, *hashes]))


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def add(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = _merge(msg.get("headers") or [], csp_for(path))
            await send(msg)

        await self.app(scope, receive, add)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the (small, generated) docs page to hash its inline script into the policy."""
        start: Message | None = None
        body: list[bytes] = []

        async def hold(msg: Message) -> None:
            nonlocal start
            if msg["type"] == "http.response.start":
                start = msg
                return
            if msg["type"] == "http.response.body":
                body.append(msg.get("body", b""))
                if not msg.get("more_body", False) and start is not None:
                    html = b"".join(body)
                    headers = [
                        (k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"
                    ]
                    headers.append((b"content-length", str(len(html)).encode()))
                    start["headers"] = _merge(headers, docs_csp(html))
                    await send(start)
                    await send({"type": "http.response.body", "body": html, "more_body": False})
                return
            await send(msg)

        await self.app(scope, receive, hold)


def _merge(headers: list[tuple[bytes, bytes]], csp: str) -> list[tuple[bytes, bytes]]:
    present = {k.lower() for k, _ in headers}
    out = list(headers)
    if b"content-security-policy" not in present:
        out.append((b"content-security-policy", csp.encode()))
    out.extend((k, v) for k, v in COMMON.items() if k not in present)
    return out
