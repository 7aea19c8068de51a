"""The JSON API behind the web chat page: accounts, conversations, streamed replies, feedback and votes.

A reply streams as server-sent events (`start`, `delta`, `moderation`, `done`, then `[DONE]`). Now and then
(`compare_rate`) two replies stream side by side and the user's pick is stored as a comparison in the format
the reward-model stage reads. Stopping is the browser aborting the request: the engine frees the slot and
the partial reply is kept with finish_reason "stopped".
"""

from __future__ import annotations

import json
import time
from contextlib import aclosing
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chatforge.serve.auth import COOKIE, Store, User, get_service, optional_user, set_session
from chatforge.serve.errors import APIError
from chatforge.serve.schemas import DB_ID
from chatforge.serve.service import REFUSAL, Reply, interleave

router = APIRouter(prefix="/api", tags=["web"])
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]


class Credentials(BaseModel):
    name: Name
    password: Annotated[str, Field(min_length=1, max_length=256)]


class Title(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200)] = "New chat"


class NewMessage(BaseModel):
    content: Annotated[str, Field(min_length=1, max_length=20000)]
    compare: bool = False


class Choice(BaseModel):
    chosen: DB_ID | None = None
    rejected: DB_ID | None = None
    tie: bool = False


class Feedback(BaseModel):
    rating: Literal["up", "down"]
    reason: Annotated[str, Field(max_length=2000)] = ""


def public(user: dict) -> dict:
    return {"id": user["id"], "name": user["name"], "role": user["role"]}


# --- accounts ---

@router.post("/auth/signup")
def signup(body: Credentials, request: Request, response: Response, store: Store):
    if not request.app.state.config.open_signup:
        raise APIError(403, "Sign-up is closed on this server; ask an admin for an account.", "signup_closed")
    if store.get_user_by_name(body.name):
        raise APIError(409, f"The name '{body.name}' is taken.", "name_taken", "name")
    user = store.create_user(body.name, body.password, "user")
    set_session(response, store.create_session(user["id"]))
    return {"user": public(user)}


@router.post("/auth/login")
def login(body: Credentials, response: Response, store: Store):
    user = store.authenticate(body.name, body.password)
    if not user:
        raise APIError(401, "Wrong name or password.", "invalid_credentials")
    set_session(response, store.create_session(user["id"]))
    return {"user": public(user)}


@router.post("/auth/logout")
def logout(request: Request, response: Response, store: Store):
    token = request.cookies.get(COOKIE)
    if token:
        store.delete_session(token)
    response.delete_cookie(COOKIE)
    return {}


@router.get("/me")
def me(user: User, request: Request):
    svc = get_service(request)
    return {"user": public(user), "model": svc.model_id, "moderation": bool(svc.moderator)}


# --- conversations ---

def owned(store, conv_id: int, user: dict) -> dict:
    conv = store.get_conversation(conv_id, user["id"])
    if not conv:
        raise APIError(404, f"No conversation {conv_id}.", "not_found")
    return conv


@router.get("/conversations")
def conversations(user: User, store: Store):
    return {"data": store.list_conversations(user["id"])}


@router.post("/conversations")
def new_conversation(user: User, store: Store, body: Title | None = None):
    return store.create_conversation(user["id"], (body or Title()).title)


@router.get("/conversations/{conv_id}")
def conversation(conv_id: DB_ID, user: User, store: Store):
    return owned(store, conv_id, user)


@router.patch("/conversations/{conv_id}")
def rename(conv_id: DB_ID, body: Title, user: User, store: Store):
    owned(store, conv_id, user)
    return store.rename_conversation(conv_id, user["id"], body.title)


@router.delete("/conversations/{conv_id}")
def delete(conv_id: DB_ID, user: User, store: Store):
    owned(store, conv_id, user)
    store.delete_conversation(conv_id, user["id"])
    return {}


@router.post("/conversations/{conv_id}/messages")
async def send(conv_id: DB_ID, body: NewMessage, user: User, store: Store, request: Request):
    conv = await run_in_threadpool(owned, store, conv_id, user)
    await run_in_threadpool(store.add_message, conv_id, "user", body.content)
    if len(conv["messages"]) == 0 and conv.get("title") in (None, "", "New chat"):
        await run_in_threadpool(store.rename_conversation, conv_id, user["id"], body.content[:48])
    history = [{"role": m["role"], "content": m["content"]} for m in conv["messages"]]
    history.append({"role": "user", "content": body.content})
    return await respond(request, store, user, conv_id, history, body.compare, replaces=None)


@router.post("/conversations/{conv_id}/regenerate")
async def regenerate(conv_id: DB_ID, user: User, store: Store, request: Request):
    conv = await run_in_threadpool(owned, store, conv_id, user)
    msgs = conv["messages"]
    if not msgs or msgs[-1]["role"] != "assistant":
        raise APIError(400, "There is no reply to regenerate.", "nothing_to_regenerate")
    history = [{"role": m["role"], "content": m["content"]} for m in msgs[:-1]]
    return await respond(request, store, user, conv_id, history, False, replaces=msgs[-1]["id"])


async def respond(request, store, user, conv_id: int, history: list[dict], compare: bool,
                  replaces: int | None) -> StreamingResponse:
    svc = get_service(request)
    system = request.app.state.config.system_prompt
    messages = ([{"role": "system", "content": system}] if system else []) + history
    ids = svc.encode(messages)
    last_user = history[-1]["content"] if history and history[-1]["role"] == "user" else ""
    action, cats, _ = await svc.decide_async(last_user, "input")
    two = action != "block" and svc.side_by_side(compare)
    handles = []
    if action != "block":
        for i in range(2 if two else 1):
            req = svc.request(ids, None, temperature=0.8, top_p=0.95, seed=None)
            handles.append(svc.submit(req))
    rows = []
    for i in range(len(handles) or 1):
        meta = {"side_by_side": two, "slot": i}
        rows.append(await run_in_threadpool(store.add_message, conv_id, "assistant", "", model=svc.model_id,
                                            meta=meta, replaces=replaces if i == 0 else None, current=(i == 0)))
    if action in ("block", "flag"):
        # on the reply to it: the reviewer sees the request and what the model made of it
        await run_in_threadpool(lambda: [store.add_flag(conv_id, rows[0]["id"], "moderation", c, "input flagged")
                                         for c in cats or ["unknown"]])
    return StreamingResponse(stream_chat(request, svc, store, user, conv_id, messages, handles, rows, action, cats,
                                         len(ids), last_user),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def event(obj) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n"


async def until_error(texts):
    """A reply's text; if the engine fails, the reply ends with what came (the chat keeps it, and a side-by-side
    partner goes on)."""
    try:
        async for text in texts:
            yield text
    except APIError:
        return


async def stream_chat(request, svc, store, user, conv_id, messages, handles, rows, action, cats, prompt_tokens,
                      last_user):
    started = time.monotonic()
    replies = [Reply(prompt_tokens=prompt_tokens) for _ in rows]
    done = [False] * len(rows)
    yield event({"type": "start", "replies": [r["id"] for r in rows], "side_by_side": len(rows) > 1})
    if action == "block":
        replies[0].text, replies[0].finish_reason = REFUSAL, "content_filter"
        yield event({"type": "moderation", "action": "block", "categories": cats})
        yield event({"type": "delta", "index": 0, "text": REFUSAL})
    try:
        async with aclosing(interleave([until_error(svc.texts(h, [], r)) for h, r in zip(handles, replies)])) as texts:
            async for i, text in texts:
                yield event({"type": "delta", "index": i, "text": text})
        for i, r in enumerate(replies):
            out_action, out_cats, _ = (await svc.decide_async(r.text, "output")) if handles else ("allow", [], {})
            if out_action == "block":
                r.text, r.finish_reason = REFUSAL, "content_filter"
                yield event({"type": "moderation", "index": i, "action": "block", "categories": out_cats,
                             "text": REFUSAL})
            elif out_action == "flag":
                yield event({"type": "moderation", "index": i, "action": "flag", "categories": out_cats})
            if out_action in ("block", "flag"):
                await run_in_threadpool(lambda: [store.add_flag(conv_id, rows[i]["id"], "moderation", c,
                                                                "reply flagged") for c in out_cats or ["unknown"]])
            await run_in_threadpool(store.update_message, rows[i]["id"], content=r.text, finish_reason=r.finish_reason)
            done[i] = True
            yield event({"type": "done", "index": i, "message_id": rows[i]["id"], "finish_reason": r.finish_reason})
        svc.log_request(last_user, source="web", prompt_tokens=prompt_tokens,
                        completion_tokens=sum(r.completion_tokens for r in replies),
                        latency_ms=(time.monotonic() - started) * 1000,
                        ttft_ms=min((r.ttft_ms for r in replies if r.ttft_ms is not None), default=0.0),
                        status=200, user_id=user["id"], flagged=action != "allow")
        yield event("[DONE]")
    finally:  # stopped by the user (the browser aborted) or finished: free slots, keep what was written
        for h in handles:
            h.cancel()
        for i, r in enumerate(replies):
            if not done[i]:
                store.update_message(rows[i]["id"], content=r.text, finish_reason="stopped")


@router.post("/conversations/{conv_id}/choose")
def choose(conv_id: DB_ID, body: Choice, user: User, store: Store, request: Request):
    """The user's pick between two side-by-side replies: stored as a comparison; the pick stays in the chat."""
    from chatforge.data.comparisons import Comparison
    from chatforge.world.prompts import Prompt

    conv = owned(store, conv_id, user)
    pair = [m for m in store.side_by_side(conv_id) if m["id"] in (body.chosen, body.rejected)]
    if body.chosen is None or body.rejected is None or len(pair) != 2:
        raise APIError(400, "Pick one of the two side-by-side replies of this conversation.", "invalid_choice")
    by_id = {m["id"]: m for m in pair}
    store.select_reply(body.chosen, others=[body.rejected])
    if body.tie:  # a tie teaches the reward model nothing; keep the first reply, store no comparison
        return {"stored": False}
    history = [{"role": m["role"], "content": m["content"]} for m in conv["messages"] if m["id"] < min(by_id)]
    svc = get_service(request)
    prompt = Prompt(svc.tag_family(history[-1]["content"]) if history else "imported", history,
                    {"source": "ui", "conversation": conv_id}, "train")
    comp = Comparison(prompt, by_id[body.chosen]["content"], by_id[body.rejected]["content"], rater=f"ui:{user['id']}",
                      criteria={"overall": "chosen"}, group=f"conv{conv_id}-{min(by_id)}", source="ui",
                      policy=svc.model_id)
    store.add_comparison(comp.to_dict(), user_id=user["id"], conversation_id=conv_id)
    return {"stored": True, "id": comp.id}


@router.post("/messages/{message_id}/feedback")
def feedback(message_id: DB_ID, body: Feedback, user: User, store: Store):
    msg = store.get_message(message_id, user["id"])
    if not msg or msg["role"] != "assistant":
        raise APIError(404, f"No reply {message_id}.", "not_found")
    return store.add_feedback(message_id, user["id"], 1 if body.rating == "up" else -1, body.reason)


__all__ = ["router", "optional_user"]
