"""POST /v1/generate: validated here, then streamed through from the generation service."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from gdgan.schemas import GenerateRequest
from gdgan.settings import Settings
from starlette.background import BackgroundTask

from services.common.auth import Principal
from services.gateway.deps import Caller, Generate, SettingsD, jobs_dep
from services.gateway.quotas import spend_images

router = APIRouter(tags=["generate"], dependencies=[Generate])

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
    429: {"description": "the token's images per minute are spent (Retry-After)"},
    503: {"description": "generator busy (Retry-After) or unreachable"},
}


async def forward_generate(
    body: dict[str, Any], request: Request, settings: Settings, who: Principal
) -> Response:
    """Charge the caller's images-per-minute quota (429 when spent), then stream the generator's answer."""
    if who.metered:
        await asyncio.to_thread(spend_images, jobs_dep().r, who.id, int(body.get("n") or 0), settings)
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
async def generate(req: GenerateRequest, request: Request, settings: SettingsD, who: Caller) -> Response:
    """Same contract as the generation service's POST /v1/generate (see its /docs); counts against
    the token's images per minute (GDGAN_QUOTA_IMAGES_PER_MINUTE: 429 with Retry-After when spent)."""
    return await forward_generate(req.model_dump(), request, settings, who)
