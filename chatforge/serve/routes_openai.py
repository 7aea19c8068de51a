"""The OpenAI-compatible API: `/v1/chat/completions` (plain and streamed), `/v1/models`, `/v1/moderations`.

Every request is logged for monitoring (off the response path: the store's background writer); a request or reply
that moderation flags or blocks is also stored as a conversation and lands in the admin triage queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import aclosing

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from chatforge.serve import schemas as S
from chatforge.serve.auth import Key, Store, get_service
from chatforge.serve.errors import APIError
from chatforge.serve.schemas import ErrorResponse
from chatforge.serve.service import REFUSAL, Reply, interleave

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 429)}
router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)


def check_model(svc, name: str) -> None:
    if name not in (svc.model_id, "chatforge", "default"):
        raise APIError(404, f"The model '{name}' does not exist (this server serves '{svc.model_id}').",
                       "model_not_found", "model")


@router.get("/models", response_model=S.ModelList)
def list_models(request: Request, key: Key):
    svc = get_service(request)
    return S.ModelList(data=[S.Model(id=svc.model_id, created=svc.created)])


@router.get("/models/{model}", response_model=S.Model)
def get_model(model: str, request: Request, key: Key):
    svc = get_service(request)
    check_model(svc, model)
    return S.Model(id=svc.model_id, created=svc.created)


@router.post("/moderations", response_model=S.ModerationResponse)
def moderations(body: S.ModerationRequest, request: Request, key: Key):
    svc = get_service(request)
    if not svc.moderator:
        raise APIError(404, "This server runs without a moderation model (start it with --moderation DIR).",
                       "moderation_unavailable")
    return S.ModerationResponse(model="chatforge-moderation", results=svc.moderate(body.texts()))


@router.post("/chat/completions", response_model=S.ChatCompletion,
             responses={200: {"content": {"text/event-stream": {}}, "description": "a completion or an SSE stream"}})
async def chat_completions(body: S.ChatCompletionRequest, request: Request, key: Key, store: Store):
    svc = get_service(request)
    check_model(svc, body.model)
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    ids = svc.encode(messages)
    prompt_tokens = len(ids)
    last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    action, cats, _ = await svc.decide_async(last_user, "input")
    log = dict(source="api", key_id=key["id"] if key else None, user_id=key.get("user_id") if key else None)
    if action == "block":  # never reaches the model
        await run_in_threadpool(flag_exchange, store, svc, messages, REFUSAL, "input", cats)
        svc.log_request(last_user, prompt_tokens=prompt_tokens, completion_tokens=0, latency_ms=0.0, ttft_ms=0.0,
                        status=200, flagged=True, **log)
        replies = [Reply(REFUSAL, "content_filter", prompt_tokens, 0) for _ in range(body.n)]
        return finished(body, svc, replies) if not body.stream else stream_static(body, svc, replies)

    requests = [svc.request(ids, body.token_limit(), body.temperature, body.top_p,
                            None if body.seed is None else (body.seed + i) % 2**63) for i in range(body.n)]
    handles = []
    try:
        for r in requests:
            handles.append(svc.submit(r))
    except APIError:
        for h in handles:
            h.cancel()
        raise
    flagged_input = action == "flag"
    if body.stream:
        return EventStream(stream(body, svc, store, handles, prompt_tokens, messages, flagged_input, cats, log,
                                  last_user), headers={"Cache-Control": "no-cache"})
    started = time.monotonic()
    replies = await asyncio.gather(*(svc.complete(h, body.stops(), prompt_tokens, request) for h in handles))
    flagged = await check_replies(store, svc, messages, replies, flagged_input, cats)
    svc.log_request(last_user, prompt_tokens=prompt_tokens, completion_tokens=sum(r.completion_tokens for r in replies),
                    latency_ms=(time.monotonic() - started) * 1000, ttft_ms=min_ttft(replies), status=200,
                    flagged=flagged, **log)
    return finished(body, svc, replies)


def min_ttft(replies: list[Reply]) -> float:
    return min((r.ttft_ms for r in replies if r.ttft_ms is not None), default=0.0)


def finished(body: S.ChatCompletionRequest, svc, replies: list[Reply]) -> S.ChatCompletion:
    choices = [S.Choice(index=i, message=S.AssistantMessage(content=r.text), finish_reason=r.finish_reason)
               for i, r in enumerate(replies)]
    completion = sum(r.completion_tokens for r in replies)
    prompt = replies[0].prompt_tokens
    return S.ChatCompletion(model=svc.model_id, choices=choices,
                            usage=S.Usage(prompt_tokens=prompt, completion_tokens=completion,
                                          total_tokens=prompt + completion))


async def check_replies(store, svc, messages, replies: list[Reply], flagged_input: bool, input_cats: list[str]) -> bool:
    """moderate_replies in the threadpool (it writes to the store), before the reply ends: a flagged exchange is in
    triage before its client has the whole reply. Without a moderation model there is nothing to check or store."""
    if not svc.moderator and not flagged_input:
        return False
    return await run_in_threadpool(moderate_replies, store, svc, messages, replies, flagged_input, input_cats)


def moderate_replies(store, svc, messages, replies: list[Reply], flagged_input: bool, input_cats: list[str]) -> bool:
    """Check each reply; a blocked reply becomes the refusal. Flagged exchanges go to triage."""
    flagged = flagged_input
    for r in replies:
        action, cats, _ = svc.decide(r.text, "output")
        if action == "block":
            r.text, r.finish_reason = REFUSAL, "content_filter"
        if action in ("block", "flag"):
            flagged = True
            flag_exchange(store, svc, messages, r.text, "output", cats)
    if flagged_input:
        flag_exchange(store, svc, messages, replies[0].text, "input", input_cats)
    return flagged


def flag_exchange(store, svc, messages: list[dict], reply: str, role: str, cats: list[str]) -> None:
    """Keep an API exchange that moderation flagged, as a conversation the triage queue shows."""
    conv = store.create_conversation(None, title=f"API · flagged {role}")
    for m in messages:
        store.add_message(conv["id"], m["role"], m["content"])
    msg = store.add_message(conv["id"], "assistant", reply, model=svc.model_id)
    for c in cats or ["unknown"]:
        store.add_flag(conv["id"], msg["id"], "moderation", c, f"{role} flagged on the API")


def sse(obj) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n"


DONE = sse("[DONE]")


def chunk(cid: str, created: int, svc, index: int, delta: dict, finish: str | None = None) -> str:
    """One `chat.completion.chunk` (the shape of `schemas.ChatCompletionChunk`)."""
    return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": svc.model_id,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})


def usage_chunk(cid: str, created: int, svc, replies: list[Reply]) -> str:
    completion = sum(r.completion_tokens for r in replies)
    prompt = replies[0].prompt_tokens if replies else 0
    return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": svc.model_id,
                "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                         "total_tokens": prompt + completion}})


async def stream(body, svc, store, handles, prompt_tokens, messages, flagged_input, input_cats, log, last_user):
    """SSE chunks for n parallel replies, interleaved as tokens arrive (all the text of a reply that is ready when
    the stream is written goes in one chunk); `[DONE]` last. Chunks that are ready together are written together
    (the role chunks with the first text; the finish, usage and [DONE] chunks at the end): the same bytes, fewer
    writes."""
    cid, created, started = S.new_id("chatcmpl"), int(time.time()), time.monotonic()
    replies = [Reply(prompt_tokens=prompt_tokens) for _ in handles]
    ready = "".join(chunk(cid, created, svc, i, {"role": "assistant", "content": ""}) for i in range(len(handles)))
    try:
        async with aclosing(interleave([svc.texts(h, body.stops(), r) for h, r in zip(handles, replies)])) as texts:
            async for i, text in texts:
                yield ready + chunk(cid, created, svc, i, {"content": text})
                ready = ""
        flagged = await check_replies(store, svc, messages, replies, flagged_input, input_cats)
        ready += "".join(chunk(cid, created, svc, i, {}, r.finish_reason) for i, r in enumerate(replies))
        if body.stream_options and body.stream_options.include_usage:
            ready += usage_chunk(cid, created, svc, replies)
        svc.log_request(last_user, prompt_tokens=prompt_tokens,
                        completion_tokens=sum(r.completion_tokens for r in replies),
                        latency_ms=(time.monotonic() - started) * 1000, ttft_ms=min_ttft(replies), status=200,
                        flagged=flagged, **log)
        yield ready + DONE
    finally:  # the client went away (or we are done): free every slot now
        for h in handles:
            h.cancel()


class EventStream(StreamingResponse):
    """A text/event-stream response whose `[DONE]` event goes out with the end of the body, in one write."""

    media_type = "text/event-stream"

    async def stream_response(self, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with aclosing(self.body_iterator) as events:
            async for text in events:
                last = text.endswith(DONE)
                await send({"type": "http.response.body", "body": text.encode(), "more_body": not last})
                if last:
                    return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def stream_static(body, svc, replies: list[Reply]) -> StreamingResponse:
    async def gen():
        cid, created = S.new_id("chatcmpl"), int(time.time())
        for i, r in enumerate(replies):
            yield chunk(cid, created, svc, i, {"role": "assistant", "content": r.text})
            yield chunk(cid, created, svc, i, {}, r.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            yield usage_chunk(cid, created, svc, replies)
        yield DONE
    return EventStream(gen())
