"""POST /v1/generate: validated here, then streamed through from the generation service."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from gdgan.schemas import GenerateRequest
from gdgan.settings import Settings
from starlette.background import BackgroundTask

from services.gateway.deps import Auth, SettingsD

router = APIRouter(tags=["generate"], dependencies=[Auth])

PASS_HEADERS = (
    "content-type",
    "content-disposition",
    "retry-after",
    "x-gdgan-model-id",
    "x-gdgan-seed",
    "x-gdgan-n",
    "x-gdgan-stage",
)
GENERATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/zip": {}, "image/png": {}, "application/json": {}},
        "description": "zip (PNGs + labels.csv), png (labelled grid) or json (base64 PNGs + labels)",
    },
    404: {"description": "unknown model"},
    503: {"description": "generator busy (Retry-After) or unreachable"},
}


async def forward_generate(body: dict[str, Any], request: Request, settings: Settings) -> Response:
    client = httpx.AsyncClient(base_url=settings.generator_url, timeout=httpx.Timeout(300.0, connect=3.0))
    headers = {}
    if auth := request.headers.get("authorization"):
        headers["Authorization"] = auth
    try:
        upstream = await client.send(
            client.build_request("POST", "/v1/generate", json=body, headers=headers), stream=True
        )
    except httpx.TransportError as exc:
        await client.aclose()
        return JSONResponse(
            {"detail": f"generation service unreachable at {settings.generator_url}: {exc}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    async def close() -> None:
        await upstream.aclose()
        await client.aclose()

    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() in PASS_HEADERS}
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=out_headers,
        background=BackgroundTask(close),
    )


@router.post("/v1/generate", response_class=Response, responses=GENERATE_RESPONSES)
async def generate(req: GenerateRequest, request: Request, settings: SettingsD) -> Response:
    """Same contract as the generation service's POST /v1/generate (see its /docs)."""
    return await forward_generate(req.model_dump(), request, settings)
