"""HTTP plumbing shared by the gateway and the generator.

- (Bearer auth and scopes: ``services.common.auth``; ``/healthz`` and ``/readyz`` stay open so
  orchestrators can probe without a secret; ``/metrics`` needs the admin scope unless
  GDGAN_METRICS_PUBLIC is set.)
- A body-size limit enforced before the body reaches FastAPI (413), so a huge upload cannot
  exhaust memory through JSON parsing.
- One mapping from library errors to status codes, so every route answers the same way and no
  stack trace leaves the process: unknown ids -> 404, a backend that cannot be reached (Redis
  connection/timeout, the Celery broker, the S3 store) -> 503 with Retry-After, and everything
  else -> 500 with the traceback in the service log. Handlers match exception classes, never
  names, so a missing file in the local store is not mistaken for a queue outage.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from gdgan.store import ArtifactNotFound, IntegrityError, InvalidArtifactId, StoreError, StoreUnavailable
from kombu.exceptions import OperationalError as KombuOperationalError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gdgan.http")


def field_error(field: str | None, msg: str, kind: str = "value_error") -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the body field (None: the body)."""
    loc = ["body", field] if field else ["body"]
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": kind}])


class BodyLimitMiddleware:
    """Reject bodies above ``max_bytes`` with 413 (by Content-Length, or while reading a chunked
    body), before any JSON parsing happens."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = False
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = True
        if too_big:
            await self._reject(scope, receive, send)
            return
        # buffer the (bounded) body so a chunked upload is limited too
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(body)
            more = msg.get("more_body", False)
        data = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes (GDGAN_MAX_BODY_BYTES)"},
            status_code=413,
        )
        await resp(scope, receive, send)


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Library errors -> HTTP status codes with one-line messages (no stack traces)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, except that a bad discriminator ('source') is named in ``loc`` too."""
        errors = []
        for e in exc.errors():
            e = dict(e)
            disc = (e.get("ctx") or {}).get("discriminator")
            if e.get("type") in ("union_tag_invalid", "union_tag_not_found") and disc:
                e["loc"] = (*tuple(e.get("loc") or ()), str(disc).strip("'\""))
            errors.append(e)
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(ArtifactNotFound)
    async def _nf(_: Request, exc: ArtifactNotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(InvalidArtifactId)
    async def _bad_id(_: Request, exc: InvalidArtifactId) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return _json(503, f"artifact store unavailable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(IntegrityError)
    async def _corrupt(_: Request, exc: IntegrityError) -> JSONResponse:
        return _json(500, f"stored artifact failed verification: {exc}")

    @app.exception_handler(StoreError)
    async def _store_err(_: Request, exc: StoreError) -> JSONResponse:
        # the remaining StoreErrors (bad store URL, a dataset that is not one...) are our bugs or
        # configuration, not a backend that will come back: 500, with the traceback in the log
        return _internal(exc)

    @app.exception_handler(redis.ConnectionError)
    async def _redis_down(_: Request, exc: redis.ConnectionError) -> JSONResponse:
        return _json(503, f"job queue (Redis) unavailable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(redis.TimeoutError)
    async def _redis_slow(_: Request, exc: redis.TimeoutError) -> JSONResponse:
        return _json(503, f"job queue (Redis) unavailable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(KombuOperationalError)
    async def _broker_down(_: Request, exc: KombuOperationalError) -> JSONResponse:
        # kombu wraps the broker's connection error when publishing a task
        return _json(503, f"job queue (broker) unavailable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _other(_: Request, exc: Exception) -> JSONResponse:
        # anything else (a missing file or a full disk in the local store, a Redis command error,
        # a bug) is ours to fix: 500, traceback in the log, no stack trace to the client
        return _internal(exc)

    app.add_middleware(_Unhandled)


class _Unhandled:
    """The 500 of an unexpected error, answered inside the app. Starlette's own handler for
    ``Exception`` re-raises after answering, and uvicorn then drops the connection, so a
    keep-alive client's next request on it fails with 'connection reset'."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:  # too late for a status code: let the server close the stream
                raise
            await _internal(exc)(scope, receive, send)


def _internal(exc: BaseException) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return _json(500, f"internal error ({type(exc).__name__}); see the service log")


class Metrics:
    """Per-app request metrics on a private registry (two apps in one test process must not clash)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gdgan_http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gdgan_http_request_seconds", "HTTP request latency", ["service", "route"], registry=self.registry
        )
        self.service = service

    def install(self, app: FastAPI, guard: list[Any] | None = None) -> None:
        """``guard``: the dependencies /metrics needs (the admin scope, unless it is public)."""
        owner = self

        class _Measure:
            """Pure ASGI (not BaseHTTPMiddleware): streaming responses (SSE) pass through untouched."""

            def __init__(self, inner: ASGIApp) -> None:
                self.inner = inner

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] != "http":
                    await self.inner(scope, receive, send)
                    return
                t0 = time.perf_counter()
                status = {"code": 500}

                async def send_wrapper(msg: Message) -> None:
                    if msg["type"] == "http.response.start":
                        status["code"] = msg["status"]
                    await send(msg)

                try:
                    await self.inner(scope, receive, send_wrapper)
                finally:
                    path = getattr(scope.get("route"), "path", "unmatched")
                    method = scope.get("method", "")
                    owner.requests.labels(owner.service, method, path, str(status["code"])).inc()
                    owner.latency.labels(owner.service, path).observe(time.perf_counter() - t0)

        app.add_middleware(_Measure)

        @app.get("/metrics", include_in_schema=False, dependencies=guard or [])
        def metrics_endpoint() -> PlainTextResponse:
            return PlainTextResponse(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
