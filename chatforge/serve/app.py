"""`create_app`: the FastAPI application of `chatforge serve` — one process, one model, one database.

Routers: `routes_openai` (/v1, API keys), `routes_web` (/api, the chat page), `routes_rate` (/api/rate),
`routes_admin` (/api/admin). Pages are static files in `static/`; every page response carries a strict
Content-Security-Policy (scripts only from this server, no inline script), so even a Markdown bug could not
run model-written script.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders

from chatforge.serve import errors, routes_admin, routes_openai, routes_rate, routes_web
from chatforge.serve.auth import RANK, optional_user
from chatforge.serve.config import ServeConfig

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
log = logging.getLogger("chatforge.serve")


def load_parts(cfg: ServeConfig):
    """(service, store) for a config: the model, its engine, the database, moderation."""
    from chatforge.models.loading import load_model
    from chatforge.serve.service import ChatService, resolve_model
    from chatforge.store import open_store

    path, model_id = resolve_model(cfg.model)
    cfg.model_id = cfg.model_id or model_id
    # with vLLM or the engine in its own process, the weights it serves are its own; the HF copy here (on the CPU)
    # only answers config questions
    own = cfg.backend == "vllm" or (cfg.backend == "chatforge" and cfg.engine_process)
    model, tok = load_model(path, device="cpu" if own else None)
    store = open_store(cfg.db_url())
    moderator = policy = None
    if cfg.moderation:
        from chatforge.moderation.classifier import Moderator
        from chatforge.moderation.policy import ModerationPolicy

        moderator = Moderator.load(cfg.moderation)
        policy = ModerationPolicy.parse(cfg.moderation_policy) if cfg.moderation_policy else ModerationPolicy()
    if cfg.rate_tasks:
        from chatforge.data.comparisons import read_tasks

        store.import_tasks([t.to_dict() for t in read_tasks(Path(cfg.rate_tasks))])
    return ChatService(cfg, model, tok, store, moderator, policy), store


class SecurityHeaders:
    """The CSP (not on the API docs, which load their own scripts) and two more headers on every response. Plain
    ASGI: starlette's BaseHTTPMiddleware (`@app.middleware`) passes each chunk of a streamed reply through a memory
    stream and another task, which on a busy CPU server cost more than writing the chunk."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = not scope["path"].startswith(("/docs", "/redoc"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if csp:
                    headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(cfg: ServeConfig, service=None, store=None) -> FastAPI:
    """The app; `service`/`store` may be passed in ready-made (tests), else they are built from `cfg`."""
    if service is None or store is None:
        service, store = load_parts(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.shutdown()
            store.flush_request_log()  # the monitoring rows still queued

    app = FastAPI(title="chatforge", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible chat API and the research-preview chat product of chatforge.")
    app.state.config, app.state.service, app.state.store = cfg, service, store
    errors.install(app)
    for r in (routes_openai.router, routes_web.router, routes_rate.router, routes_admin.router):
        app.include_router(r)

    app.add_middleware(SecurityHeaders)

    def page(name: str, role: str | None = None):
        def serve_page(request: Request):
            if role:
                user = optional_user(request, store)
                if not user or RANK.get(user["role"], -1) < RANK[role]:
                    return RedirectResponse(f"/?next=/{name}", status_code=303)
            return FileResponse(STATIC / f"{name or 'index'}.html", headers={"Cache-Control": "no-cache"})
        return serve_page

    app.get("/", include_in_schema=False)(page(""))
    app.get("/rate", include_in_schema=False)(page("rate", "rater"))
    app.get("/admin", include_in_schema=False)(page("admin", "admin"))
    app.get("/health", include_in_schema=False)(lambda: {"ok": True, "model": service.model_id})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(cfg: ServeConfig) -> None:
    """Run the server in this process until Ctrl-C."""
    import uvicorn

    app = create_app(cfg)
    cfg.save(Path(cfg.data_dir) / "serve_config.json")
    print(f"chatforge serving {cfg.model_id} on http://{cfg.host}:{cfg.port}  (API: /v1, admin: /admin)", flush=True)
    # keep idle connections longer than clients do: httpx (and so the `openai` client) drops an idle connection
    # after 5 s, uvicorn's default is also 5 s, and a request sent on a connection the server is closing at that
    # moment fails as a connection error (30 of 6718 requests in a 3-minute 64-client run of bench/serve_load.py)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                timeout_keep_alive=75)
