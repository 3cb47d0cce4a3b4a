"""JSON nested deeper than the parser goes is invalid input, answered with the status the OpenAPI
schema documents for the route (422; OpenAI's 400 under ``/v1/``), on every route with a JSON
body, and never a 500 or an undocumented 400."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import login_headers
from tests.route_table import Endpoint, app_endpoints

JSON_ROUTES = [e for e in app_endpoints() if e.body == "json"]
DEPTH = 100_000  # far past Python's recursion limit; 200 KB, well under the body limits
NESTINGS = {
    "arrays": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
}


@pytest.fixture
async def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _documented_statuses(schema: dict[str, Any], endpoint: Endpoint) -> set[int]:
    responses = schema["paths"][endpoint.path][endpoint.method.lower()]["responses"]
    return {int(code) for code in responses if code.isdigit()}


@pytest.mark.parametrize("nesting", sorted(NESTINGS))
@pytest.mark.parametrize("endpoint", JSON_ROUTES, ids=lambda e: e.id)
async def test_deeply_nested_json_is_the_documented_invalid_input(
    client: httpx.AsyncClient, endpoint: Endpoint, nesting: str
) -> None:
    schema = (await client.get("/openapi.json")).json()
    path = re.sub(r"\{[^}]+\}", lambda _: uuid.uuid4().hex, endpoint.path)
    headers = {"Content-Type": "application/json", **(await login_headers(client, "deep"))}
    r = await client.request(endpoint.method, path, content=NESTINGS[nesting], headers=headers)
    body = r.json()
    openai = endpoint.path.startswith("/v1/")
    assert r.status_code == (400 if openai else 422), r.text[:300]
    if endpoint.in_schema:  # else an alias of a documented route
        assert r.status_code in _documented_statuses(schema, endpoint)
    assert isinstance(body["detail"], str)
    assert "nested too deeply" in body["detail"]
    if openai:
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"] == body["detail"]


@pytest.mark.parametrize("depth", [200, 500, 900, 990])
async def test_nesting_inside_a_valid_request_is_never_a_server_error(
    client: httpx.AsyncClient, depth: int
) -> None:
    """Depths around the recursion limit, where the body parses and what reads it next may not."""
    headers = await login_headers(client, "deep")
    nested: Any = "x"
    for _ in range(depth):
        nested = {"a": [nested]}
    tool = {"type": "function", "function": {"name": "f", "parameters": nested}}
    for path, body in (
        (
            "/v1/chat/completions",
            {
                "model": "local:echo",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [tool],
            },
        ),
        ("/api/sessions", {"title": nested}),
        ("/v1/embeddings", {"model": "default", "input": nested}),
    ):
        try:
            content = httpx.Request("POST", "/", json=body).content
        except RecursionError:
            continue  # deeper than this test's own encoder goes
        r = await client.post(
            path, content=content, headers={"Content-Type": "application/json", **headers}
        )
        assert r.status_code < 500, f"{path} at depth {depth}: {r.status_code} {r.text[:300]}"
        assert isinstance(r.json()["detail"], str) if r.status_code >= 400 else True
