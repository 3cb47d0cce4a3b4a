"""Schema fuzzing: schemathesis generates requests from the app's own OpenAPI schema, valid and
invalid, for every operation, and checks every response: never a 5xx, every status, content type,
header and body as the schema declares them, invalid input refused, every request to a protected
operation answered 401 once its token is taken away, an object once deleted answering 404.

Three passes: every operation on its own; every operation that names an object, on real objects
of the caller's; and stateful sequences along the links schemathesis infers between operations
(create a session, then read, rename or delete it...).

The app runs in process (schemathesis' ASGI transport) on a database of its own, as a registered
user with a bearer token; streaming replies come from the offline model. Runs are derandomized:
the same requests every run, except where they carry ids the app returned earlier.

Not used: schemathesis' ``positive_data_acceptance`` (schema-valid input must succeed). Rules no
JSON Schema states are part of the API (a common password, an empty file, a quota, an unknown
session id); they answer a declared 4xx, which the other checks hold to the schema.
"""

from __future__ import annotations

import copy
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CheckContext, CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    ensure_resource_availability,
    is_unexpected_http_status_case,
    positive_data_acceptance,
)
from starlette.types import Receive, Scope, Send

from omnichat.app import create_app
from omnichat.cli import migrate
from omnichat.settings import Settings
from tests.conftest import PASSWORD, TEST_SECRET, make_settings, postgres_url, unique_email
from tests.route_table import OWNED_PARAMETERS, app_endpoints

# Generated examples per operation, on top of schemathesis' coverage cases (boundary and invalid
# values of every parameter), which always run first.
MAX_EXAMPLES = 8
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # No shrinking: a failure is reported as it happened. A replay would not see the same app
    # (the ids and rows earlier requests made), so a shrunk case is not the one that failed.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
STATEFUL_SETTINGS = settings(FUZZ_SETTINGS, max_examples=40, stateful_step_count=10)
EXCLUDED_CHECKS: list[CheckFunction] = [positive_data_acceptance]
# The first request that embeds text loads the model; generation is offline and immediate.
REQUEST_TIMEOUT_S = 60


def _openapi() -> dict[str, Any]:
    """The app's schema, built without a database (nothing is connected to make it)."""
    with tempfile.TemporaryDirectory() as folder:
        return create_app(Settings(secret_key=TEST_SECRET, data_dir=Path(folder))).openapi()


OPENAPI = _openapi()
# Each operation's path parameters: (the endpoint's name for one, its name in the schema).
PATH_PARAMS = {(e.method, e.path): e.path_params for e in app_endpoints()}
# Path parameters that name something every user sees, not an object of the caller's: a live one.
SHARED_VALUES = {"model": "local:echo"}  # GET /v1/models/{model}: the offline chat model


class Target:
    """The app under test behind one ASGI callable: the schema is loaded at collection, the app
    (one per database backend) is made by a fixture. Holds the fuzzing user and their objects."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None
        self.email = ""
        self.token = ""
        self.objects: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the fuzz_target fixture is not active"
        await self.app(scope, receive, send)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with asgi.get_client(cast("asgi.ASGIApp", self)) as client:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            return client.request(
                method, path, headers=headers, timeout=REQUEST_TIMEOUT_S, **kwargs
            )

    def login(self, email: str | None = None) -> str:
        email = email or self.email
        r = self.request("POST", "/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def register(self) -> str:
        email = unique_email("fuzz")
        r = self.request("POST", "/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return email

    def object_id(self, kind: str) -> str:
        """A live object of the user's (made again once a fuzzed request deleted it)."""
        if kind not in self.objects or self._gone(kind):
            self._create(kind)
        return self.objects[kind]

    def _gone(self, kind: str) -> bool:
        probe = {
            "session": f"/sessions/{self.objects.get('session')}",
            "message": f"/chat/stream/{self.objects.get('message')}",
            "document": f"/documents/{self.objects.get('document')}",
        }.get(kind)
        if probe is None:  # an API key: listed or not
            keys = self.request("GET", "/api-keys").json()
            return self.objects[kind] not in {k["id"] for k in keys}
        return bool(self.request("GET", probe).status_code == 404)

    def _create(self, kind: str) -> None:
        if kind in ("session", "message"):
            r = self.request("POST", "/sessions", json={"title": "fuzzed"})
            assert r.status_code == 200, r.text
            self.objects["session"] = r.json()["id"]
            for role in ("user", "assistant"):
                body = {"message": f"a {role} message", "role": role, "session": r.json()["id"]}
                made = self.request("POST", "/api/chats", json=body)
                assert made.status_code == 201, made.text
                self.objects["message"] = made.json()["id"]
        elif kind == "document":
            r = self.request(
                "POST",
                "/upload/document",
                files={"file": ("fuzz.txt", b"Lighthouse keepers count ships.", "text/plain")},
            )
            assert r.status_code == 200, r.text
            self.objects["document"] = r.json()["id"]
        else:
            r = self.request("POST", "/api-keys", json={"name": "fuzzed"})
            assert r.status_code == 201, r.text
            self.objects[kind] = r.json()["id"]


TARGET = Target()
# A copy: schemathesis adds the links it infers to the schema it is given.
schema = schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI))
schema.app = TARGET


@schema.hook("filter_body")
def _file_parts_are_bytes(context: schemathesis.HookContext, body: Any) -> bool:
    """A multipart file part is bytes on the wire, whatever the generator made of it: a "file"
    that was a boolean arrives as the four bytes ``true``, a valid text file, so such a case
    cannot be the invalid request it was generated as."""
    if context.operation is None or context.operation.path != "/upload/document":
        return True
    return not isinstance(body, dict) or isinstance(body.get("file", b""), bytes | str)


@pytest.fixture(scope="module")
async def fuzz_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A database of its own: the fuzzer leaves thousands of odd rows behind."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'fuzz.db'}"
    else:
        url = postgres_url(request.getfixturevalue("pg_server"), f"fuzz_{uuid.uuid4().hex[:8]}")
    # Generated bodies carry wrong current_password values by the hundred, and those count as
    # failed logins: the brake would lock the fuzzing user out of its own logins.
    fuzz = make_settings(
        url,
        data_dir,
        generation_rate_limit="100000/minute",
        max_concurrent_generations=100,
        failed_login_limit="100000/minute",
    )
    await migrate(fuzz)
    return fuzz


@pytest.fixture(scope="module")
def fuzz_target(fuzz_settings: Settings) -> Iterator[Target]:
    """The app on the fuzz database, its lifespan run by schemathesis' ASGI transport, and one
    registered user whose token authenticates every request."""
    TARGET.app = create_app(fuzz_settings)
    TARGET.token = ""
    TARGET.objects = {}
    TARGET.email = TARGET.register()
    TARGET.token = TARGET.login()
    TARGET.object_id("document")  # the first upload loads the embedding model
    try:
        yield TARGET
    finally:
        asgi.shutdown_lifespans()
        TARGET.app = None


def bearer(case: schemathesis.Case[Any], target: Target) -> dict[str, str]:
    # A logout ends the login whose token it carries: it gets a login of its own.
    token = target.login() if case.operation.path == "/auth/logout" else target.token
    return {"Authorization": f"Bearer {token}"}


# Accounts stay out of the sequences: a generated email is taken once registered, so the same
# steps would take another path in a later scenario (and the links schemathesis infers between
# them, "the user created" to "/users/me", are not this API's). They are fuzzed above.
SEQUENCES = schema.exclude(path_regex=r"^/(api/auth|auth|users|token)\b")


# Statuses that refuse a request for its shape before its credentials are read (an unparsable
# body, a method the path does not serve).
REFUSED_BEFORE_AUTH = {400, 405, 413, 415, 422}


def refused_without_token(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """The same request without the token answers 401 ``WWW-Authenticate: Bearer`` on every
    operation the schema marks as protected. (schemathesis' own ``ignored_auth`` check only
    knows API-key, basic and HTTP schemes, not this API's OAuth2 password flow.)"""
    operation = case.operation
    if not OPENAPI["paths"][operation.path][operation.method.lower()].get("security"):
        return None
    if any(name.lower() == "authorization" for name in case.headers or {}):
        return None
    anonymous = case.call(timeout=REQUEST_TIMEOUT_S)
    well_formed = (
        case.meta is not None
        and case.meta.generation.mode.is_positive
        and case.method.upper() == operation.method.upper()
        and not is_unexpected_http_status_case(case)
    )
    allowed = {401} if well_formed else {401, *REFUSED_BEFORE_AUTH}
    assert anonymous.status_code in allowed, (
        f"{operation.label} without a token answered {anonymous.status_code}, not 401"
    )
    if anonymous.status_code == 401:
        assert anonymous.headers.get("www-authenticate") == ["Bearer"], anonymous.headers
    return None


ADDITIONAL_CHECKS: list[CheckFunction] = [refused_without_token]


def call_and_validate(case: schemathesis.Case[Any], target: Target) -> None:
    case.call_and_validate(
        headers=bearer(case, target),
        additional_checks=ADDITIONAL_CHECKS,
        excluded_checks=EXCLUDED_CHECKS,
        timeout=REQUEST_TIMEOUT_S,
    )


def test_schema_is_the_apps(fuzz_target: Target) -> None:
    assert fuzz_target.app is not None
    assert fuzz_target.app.openapi() == OPENAPI


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case: schemathesis.Case[Any], fuzz_target: Target) -> None:
    call_and_validate(case, fuzz_target)


@schema.include(path_regex=r"\{").parametrize()
@FUZZ_SETTINGS
def test_every_operation_on_real_objects(case: schemathesis.Case[Any], fuzz_target: Target) -> None:
    """The same, with the path naming a live object of the caller's instead of a random id:
    the request reaches the code behind the lookup. (A case whose path itself is the invalid
    part keeps it.)"""
    if case.meta is None or not case.meta.is_negative_at(ParameterLocation.PATH):
        operation = case.operation
        for name, alias in PATH_PARAMS[(operation.method.upper(), operation.path)]:
            if name in SHARED_VALUES:
                case.path_parameters[alias] = SHARED_VALUES[name]
                continue
            if name not in OWNED_PARAMETERS:
                pytest.fail(f"{operation.label}: no object for path parameter {name!r}")
            case.path_parameters[alias] = fuzz_target.object_id(OWNED_PARAMETERS[name])
    call_and_validate(case, fuzz_target)


def test_stateful_sequences(fuzz_target: Target) -> None:
    """Sequences along the links schemathesis infers from the schema (an id a response returns,
    a path parameter of the same name), each scenario as a new user: the ``use_after_free`` and
    ``ensure_resource_availability`` checks hold a deleted object to 404 and a created one to
    being there."""

    class Machine(SEQUENCES.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from an empty account: the same steps meet the same state.
            self.headers = {"Authorization": f"Bearer {fuzz_target.login(fuzz_target.register())}"}
            # Ids deleted in this scenario by any route, and whether a route deleted many at once.
            self.deleted: set[str] = set()
            self.deleted_many = False

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"headers": self.headers, "timeout": REQUEST_TIMEOUT_S}

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            excluded = EXCLUDED_CHECKS
            ids = {str(value) for value in (case.path_parameters or {}).values()}
            if response.status_code == 404 and (self.deleted_many or ids & self.deleted):
                # One object has several routes (a session is /sessions/{session_id} and
                # /api/sessions/{id}); schemathesis counts a deletion only through the route it
                # was created by, so a 404 after a deletion through another is no failure.
                excluded = [*EXCLUDED_CHECKS, ensure_resource_availability]
            if case.method.upper() == "DELETE" and 200 <= response.status_code < 300:
                self.deleted |= ids
                self.deleted_many = self.deleted_many or not ids
            # The headers named as the caller's own: schemathesis' auth-aware checks tell the
            # credentials a test sends from generated ones by them.
            case.validate_response(
                response,
                headers=kwargs.get("headers"),
                additional_checks=[*(additional_checks or []), *ADDITIONAL_CHECKS],
                excluded_checks=excluded,
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    Machine.run(settings=STATEFUL_SETTINGS)
