"""Routes that authenticate their caller before they read the request's body.

FastAPI reads and parses a route's body (a JSON document, or a whole multipart upload spooled to
disk) before it solves any dependency, so ``get_caller`` alone would answer an anonymous 25 MB
upload with 401 only once all of it had arrived. On a route that has a body and needs a caller,
this route class authenticates first, from the headers alone, and leaves the caller where
``get_caller`` finds it: a missing or bad credential is refused with the body unread.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from omnichat.container import Container
from omnichat.deps import CALLER_SCOPE_KEY, authenticate, get_caller, oauth2_scheme

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def needs_caller(dependant: Dependant) -> bool:
    return any(sub.call is get_caller or needs_caller(sub) for sub in dependant.dependencies)


class AuthenticateFirstRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        if self.body_field is None or not needs_caller(self.dependant):
            return handle

        async def authenticate_then_handle(request: Request) -> Response:
            container: Container = request.app.state.container
            token = await oauth2_scheme(request)
            request.scope[CALLER_SCOPE_KEY] = await authenticate(token, container)
            return await handle(request)

        return authenticate_then_handle
