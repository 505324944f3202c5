"""The gateway's OpenAPI links (services/gateway/openapi_links.py) name real operations and real
parameters, and the values they take exist in the answers they start from: a renamed route or
field would otherwise leave the stateful fuzzer (and clients reading the links) a dead end."""

from __future__ import annotations

from services.gateway.app import create_app
from services.gateway.openapi_links import LINKS


def _resolve(schema: dict, ref: str) -> dict:
    node = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_link_targets_an_operation_parameter_and_a_response_field() -> None:
    schema = create_app().openapi()
    ops = {o["operationId"]: o for path in schema["paths"].values() for o in path.values()}
    n = 0
    for (method, path, status), links in LINKS.items():
        response = schema["paths"][path][method]["responses"][status]
        body = response["content"]["application/json"]["schema"]
        assert set(response["links"]) == set(links)
        for name, link in response["links"].items():
            target = ops[link["operationId"]]
            names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            for param, expr in link["parameters"].items():
                assert param in names, (name, param)
                pointer = expr.removeprefix("$response.body#/").split("/")
                node = body
                for part in pointer:
                    node = _resolve(schema, node["$ref"]) if "$ref" in node else node
                    node = node["items"] if part.isdigit() else node["properties"][part]
                n += 1
    assert n >= 10
    # the event stream is never a link target (following it would hold a connection open)
    events = schema["paths"]["/v1/jobs/{job_id}/events"]["get"]["operationId"]
    assert all(
        link["operationId"] != events
        for path in schema["paths"].values()
        for op in path.values()
        for r in op["responses"].values()
        for link in r.get("links", {}).values()
    )
