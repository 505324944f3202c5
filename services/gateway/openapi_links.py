"""OpenAPI links between the gateway's operations: which id an answer hands to which next call.

Clients and docs read them as "after POST /v1/datasets, poll GET /v1/jobs/{job_id}"; a stateful
fuzzer (schemathesis) follows them to chain real ids (a job just created, then shown, cancelled,
its dataset deleted), reaching states a stateless fuzzer with random ids never does. The event
stream (SSE) is left unlinked on purpose: following it would hold a connection open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

# (method, path, status) of the answer -> {link name: (method, path of the next call, {param: expr})}
_JOB = {"job_id": "$response.body#/job_id"}
_DATASET = {"dataset_id": "$response.body#/dataset_id"}
_FOLLOW_JOB = {
    "ShowJob": ("get", "/v1/jobs/{job_id}", _JOB),
    "CancelJob": ("post", "/v1/jobs/{job_id}/cancel", _JOB),
    "JobPreview": ("get", "/v1/jobs/{job_id}/preview.png", _JOB),
}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/v1/datasets", "202"): {
        **_FOLLOW_JOB,
        "ShowDataset": ("get", "/v1/datasets/{dataset_id}", _DATASET),
        "DeleteDataset": ("delete", "/v1/datasets/{dataset_id}", _DATASET),
    },
    ("post", "/v1/jobs/train", "202"): _FOLLOW_JOB,
    ("post", "/v1/jobs/evaluate", "202"): _FOLLOW_JOB,
    ("post", "/v1/jobs/generate", "202"): _FOLLOW_JOB,
    ("get", "/v1/datasets", "200"): {
        "ShowFirstDataset": ("get", "/v1/datasets/{dataset_id}", {"dataset_id": "$response.body#/0/id"}),
    },
    ("get", "/v1/jobs", "200"): {
        "ShowFirstJob": ("get", "/v1/jobs/{job_id}", {"job_id": "$response.body#/jobs/0/id"}),
        "CancelFirstJob": ("post", "/v1/jobs/{job_id}/cancel", {"job_id": "$response.body#/jobs/0/id"}),
    },
}


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with :data:`LINKS` added (by operationId, looked up from method and path, so a
    renamed route function cannot leave a dangling link: a missing operation raises)."""
    paths = schema["paths"]
    for (method, path, status), links in LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": paths[p][m]["operationId"], "parameters": dict(params)}
            for name, (m, p, params) in links.items()
        }
    return schema


def install(app: FastAPI) -> None:
    """Serve the generated schema with the links added (computed once, as FastAPI caches it)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
