"""The app's route table as tests see it: every route and method, schema or not, with the names of
its path parameters. Tests that must cover every route iterate this, so a new route is covered (or
fails them) without anyone remembering to add it."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route

from omnichat.app import create_app
from omnichat.settings import Settings
from tests.conftest import TEST_SECRET

# The owned objects a path parameter can name, by the endpoint's own name for the parameter (its
# name in the URL template may be shared: GET and DELETE /api/chats/{id} take a session id and a
# message id).
OWNED_PARAMETERS = {
    "session_id": "session",
    "message_id": "message",
    "document_id": "document",
    "key_id": "api_key",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    # (the endpoint's name for the parameter, its name in ``path``), in path order
    path_params: tuple[tuple[str, str], ...] = ()
    # "json", "form", "multipart" or None
    body: str | None = None
    in_schema: bool = True
    # A mount (static files): ``path`` ends with the mount's ``{path}``.
    mount: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def owned_kinds(self) -> set[str]:
        return {OWNED_PARAMETERS[name] for name, _ in self.path_params if name in OWNED_PARAMETERS}


def _body_kind(route: APIRoute) -> str | None:
    field = route.body_field
    if field is None:
        return None
    kind = type(field.field_info).__name__
    return {"File": "multipart", "Form": "form"}.get(kind, "json")


def endpoints(app: FastAPI) -> list[Endpoint]:
    """One entry per route and method, in the order the app matches them; paths as the OpenAPI
    schema writes them (``/v1/models/{model}`` for the route's ``{model:path}``)."""
    found: list[Endpoint] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", str(context.path))
        if isinstance(route, APIRoute):
            params = tuple((p.name, p.alias) for p in route.dependant.path_params)
            for method in sorted(context.methods or ()):
                found.append(
                    Endpoint(method, path, params, _body_kind(route), route.include_in_schema)
                )
        elif isinstance(route, Mount):
            found.append(
                Endpoint("GET", f"{path.rstrip('/')}/{{path}}", (("path", "path"),), mount=True)
            )
        elif isinstance(route, Route):
            for method in sorted(context.methods or ()):
                found.append(Endpoint(method, path, in_schema=route.include_in_schema))
        else:
            raise AssertionError(f"a route of a kind the tests do not know: {route!r}")
    return found


def app_endpoints() -> list[Endpoint]:
    """The route table of an app with the default settings (at collection time; no database is
    connected to build one)."""
    with tempfile.TemporaryDirectory() as folder:
        return endpoints(create_app(Settings(secret_key=TEST_SECRET, data_dir=Path(folder))))
