"""Who is calling: FastAPI dependencies for the store, the chat service, API keys and web sessions.

- `/v1/*` takes `Authorization: Bearer cf-…` keys, required as soon as one key exists
  (`chatforge keys create`); before that the API is open, as a fresh local install should be.
- The web pages use a session cookie set by login/signup; roles are user < rater < admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from chatforge.serve.errors import APIError

COOKIE = "cf_session"
RANK = {"user": 0, "rater": 1, "admin": 2}


async def get_store(request: Request):  # async: FastAPI runs a plain def dependency in its threadpool
    return request.app.state.store


def get_service(request: Request):
    return request.app.state.service


Store = Annotated[object, Depends(get_store)]


async def api_key(request: Request, store: Store) -> dict | None:
    """The calling key (None while no key was ever created: then any or no key is accepted)."""
    return await run_in_threadpool(caller_key, request, store)  # one trip to the threadpool for the queries


def caller_key(request: Request, store) -> dict | None:
    state = request.app.state
    if not getattr(state, "api_keys_seen", False):
        if not store.list_keys():  # any key, revoked or not: revoking every key does not reopen the API
            return None
        state.api_keys_seen = True  # keys are revoked, never deleted: from now on they always exist
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if not secret or scheme.lower() != "bearer":
        raise APIError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer cf-…'.",
                       "missing_api_key")
    key = store.key_for_secret(secret.strip())
    if not key:
        raise APIError(401, "Incorrect API key provided, or the key was revoked.", "invalid_api_key")
    return key


def optional_user(request: Request, store: Store) -> dict | None:
    token = request.cookies.get(COOKIE)
    return store.session_user(token) if token else None


def current_user(user: Annotated[dict | None, Depends(optional_user)]) -> dict:
    if not user:
        raise APIError(401, "Log in first.", "not_logged_in")
    return user


def require(role: str):
    """A dependency that lets through users with at least this role."""
    def check(user: Annotated[dict, Depends(current_user)]) -> dict:
        if RANK.get(user["role"], -1) < RANK[role]:
            raise APIError(403, f"This needs the {role} role.", "forbidden")
        return user
    return check


def set_session(response: Response, token: str, secure: bool = False) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, max_age=30 * 86400)


User = Annotated[dict, Depends(current_user)]
Rater = Annotated[dict, Depends(require("rater"))]
Admin = Annotated[dict, Depends(require("admin"))]
Key = Annotated[dict | None, Depends(api_key)]
