"""The web UI in a real browser (Debian chromium via Playwright), without the product server.

A throwaway http.server serves chatforge/serve/static (under /static/, pages at /, /rate, /admin, with the
same Content-Security-Policy as the real server) and a small in-memory fake of the web JSON API from the
serve spec, so the pages' own code is exercised: the safe Markdown renderer against hostile model text, the
event-stream parser, and the chat, rater and admin pages end to end (login, streaming, stop, feedback,
regenerate, side by side, ranking, triage, export). Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import itertools
import json
import secrets
import shutil
import threading
import time
from http.cookies import SimpleCookie
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
STATIC = Path(__file__).resolve().parents[1] / "chatforge" / "serve" / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
PAGES = {"/": "/static/index.html", "/rate": "/static/rate.html", "/admin": "/static/admin.html"}
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]

# model text the fake server streams: Markdown, plus raw HTML that must stay text
REPLY = ("Here is **bold** and `a<b`:\n\n- one\n- two\n\n[docs](https://example.com/docs) "
         "<img src=x onerror=\"window.pwned=1\">")

MD_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script type="module" src="md_test.js"></script></head>
<body><div id="out"></div></body></html>
"""
MD_JS = """import { renderMarkdown } from "./markdown.js";
import { SSEParser } from "./sse.js";
window.renderMarkdown = renderMarkdown;
window.SSEParser = SSEParser;
window.mdReady = true;
"""


# --- a fake of the web JSON API (only what the pages call; shapes from the serve spec) ---

class FakeApi:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.users: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.convs: dict[int, dict] = {}
        self.calls: list[tuple[str, str, dict]] = []  # (method, path, body) of every POST/PATCH/DELETE
        self.disconnected = threading.Event()  # a slow stream saw the browser hang up
        self.rated = 0

    def posted(self, path_part: str) -> list[dict]:
        return [b for m, p, b in self.calls if m != "GET" and path_part in p]

    def message(self, role: str, content: str) -> dict:
        return {"id": next(self.ids), "role": role, "content": content, "model": "fake", "finish_reason": "stop",
                "feedback": None}


def stream_events(handler, events, slow=False):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()
    try:
        for ev in events:
            handler.wfile.write(f"data: {json.dumps(ev)}\n\n".encode())
            handler.wfile.flush()
        if slow:  # keep streaming until the browser aborts the fetch (at most 10 s)
            for _ in range(200):
                time.sleep(0.05)
                handler.wfile.write(b'data: {"type": "delta", "index": 0, "text": " more"}\n\n')
                handler.wfile.flush()
            return
        handler.wfile.write(b"data: [DONE]\n\n")
    except (BrokenPipeError, ConnectionResetError):
        handler.server.fake.disconnected.set()


def chunks(text: str, n: int = 7) -> list[str]:
    return [text[i:i + n] for i in range(0, len(text), n)]


def reply_events(fake: FakeApi, conv: dict, user_msg: dict | None, compare: bool) -> list[dict]:
    texts = [REPLY, "Second **reply**: ask me `anything`."] if compare else [REPLY]
    msgs = [fake.message("assistant", t) for t in texts]
    conv["messages"].extend(msgs[:1])  # the first stays on the branch until a choice is made
    conv["pending"] = msgs
    events = [{"type": "start", "user_message_id": user_msg["id"] if user_msg else None,
               "replies": [m["id"] for m in msgs]}]
    parts = [chunks(t) for t in texts]
    for step in range(max(len(p) for p in parts)):
        for i, p in enumerate(parts):
            if step < len(p):
                events.append({"type": "delta", "index": i, "text": p[step]})
    events += [{"type": "done", "index": i, "message_id": m["id"], "finish_reason": "stop"} for i, m in enumerate(msgs)]
    return events


def handle_api(h, method: str, path: str, body: dict):
    fake: FakeApi = h.server.fake
    with fake.lock:
        if method != "GET":
            fake.calls.append((method, path, body))
        cookie = SimpleCookie(h.headers.get("Cookie", ""))
        user = fake.sessions.get(cookie["cf_session"].value) if "cf_session" in cookie else None
        parts = path.strip("/").split("/")[1:]  # after "api"
        if parts[0] == "auth":
            if parts[1] == "logout":
                if "cf_session" in cookie:
                    fake.sessions.pop(cookie["cf_session"].value, None)
                return 200, {}, "cf_session=; Max-Age=0; Path=/"
            name, password = body.get("name", ""), body.get("password", "")
            if parts[1] == "signup":
                if name in fake.users:
                    return 400, {"error": {"message": f"the name '{name}' is taken", "type": "invalid_request"}}, None
                role = "admin" if name.startswith("admin") else "user"
                fake.users[name] = {"id": next(fake.ids), "name": name, "role": role, "password": password}
            u = fake.users.get(name)
            if not u or u["password"] != password:
                return 401, {"error": {"message": "wrong name or password", "type": "authentication_error"}}, None
            token = secrets.token_hex(8)
            fake.sessions[token] = {k: u[k] for k in ("id", "name", "role")}
            return 200, {"user": fake.sessions[token]}, f"cf_session={token}; HttpOnly; SameSite=Strict; Path=/"
        if user is None:
            return 401, {"error": {"message": "not signed in", "type": "authentication_error"}}, None
        if parts == ["me"]:
            return 200, {"user": user}, None
        if parts[0] == "conversations":
            if len(parts) == 1 and method == "GET":
                data = [{k: c[k] for k in ("id", "title", "updated")} for c in fake.convs.values()]
                return 200, {"data": sorted(data, key=lambda c: c["updated"], reverse=True)}, None
            if len(parts) == 1:
                cid = next(fake.ids)
                fake.convs[cid] = {"id": cid, "title": body.get("title") or "New chat", "updated": time.time(),
                                   "messages": []}
                return 200, {k: fake.convs[cid][k] for k in ("id", "title", "updated")}, None
            conv = fake.convs.get(int(parts[1]))
            if conv is None:
                return 404, {"error": {"message": "no such conversation", "type": "not_found"}}, None
            conv["updated"] = time.time()
            if len(parts) == 2:
                if method == "PATCH":
                    conv["title"] = body["title"]
                if method == "DELETE":
                    del fake.convs[conv["id"]]
                    return 200, {}, None
                if method == "GET":
                    return 200, {k: conv[k] for k in ("id", "title", "messages")}, None
                return 200, {k: conv[k] for k in ("id", "title", "updated")}, None
            if parts[2] == "messages":
                user_msg = fake.message("user", body["content"])
                conv["messages"].append(user_msg)
                if conv["title"] == "New chat":
                    conv["title"] = body["content"][:30]
                if body["content"] == "slow":
                    reply = fake.message("assistant", "")
                    conv["messages"].append(reply)
                    return "stream", [{"type": "start", "user_message_id": user_msg["id"], "replies": [reply["id"]]},
                                      {"type": "delta", "index": 0, "text": "Thinking"}], True
                if body["content"] == "overloaded":
                    busy = {"message": "the server is busy, try again in 2 s", "type": "rate_limit"}
                    return 429, {"error": busy}, None
                events = reply_events(fake, conv, user_msg, bool(body.get("compare")))
                if body["content"] == "flagme":  # the request is flagged, the second reply is blocked after streaming
                    events.insert(1, {"type": "moderation", "action": "flag", "categories": ["malware"]})
                    events.insert(-2, {"type": "moderation", "index": 1, "action": "block", "categories": ["toxic"],
                                       "text": "Sorry, I can't help with that."})
                    events[-1]["finish_reason"] = "content_filter"
                return "stream", events, False
            if parts[2] == "regenerate":
                conv["messages"] = [m for m in conv["messages"] if m is not conv["messages"][-1]]
                return "stream", reply_events(fake, conv, None, False), False
            if parts[2] == "choose":
                return 200, {}, None
        if parts[0] == "messages" and parts[2] == "feedback":
            for conv in fake.convs.values():
                for m in conv["messages"]:
                    if m["id"] == int(parts[1]):
                        m["feedback"] = {"rating": body["rating"], "reason": body.get("reason", "")}
            return 200, {"id": next(fake.ids)}, None
        if parts[0] == "rate":
            if user["role"] not in ("rater", "admin"):
                return 403, {"error": {"message": "raters only", "type": "permission_error"}}, None
            if parts[1] == "progress":
                return 200, {"mine": {"done": fake.rated, "total": 1}, "raters": [{"rater": user["name"],
                             "tasks": fake.rated}], "agreement": {"pairwise": 0.75, "pairs": 8}}, None
            if parts[1] == "task" and method == "GET":
                task = None if fake.rated else {
                    "id": 7, "messages": [{"role": "user", "content": "What is **2+2**?"}],
                    "responses": ["It is `4`.", "<script>window.pwned=1</script> 5", "I'd rather not say."],
                    "criteria": [{"name": "helpful", "text": "does what was asked"},
                                 {"name": "truthful", "text": "states no false facts"}]}
                return 200, {"task": task, "criteria": [{"name": "helpful", "text": "does what was asked"}]}, None
            fake.rated += 1
            return 200, {"stored": 3}, None
        if parts[0] == "admin":
            if user["role"] != "admin":
                return 403, {"error": {"message": "admins only", "type": "permission_error"}}, None
            if parts[1] == "metrics":
                return 200, {
                    "requests": 40, "tokens": 5200, "latency_ms": {"p50": 120, "p95": 300, "p99": 450},
                    "ttft_ms": {"p50": 20, "p95": 45, "p99": 60},
                    "series": [{"t": f"2026-01-01T0{i}:00:00+00:00", "requests": 10, "thumbs_up": 2,
                                "thumbs_down": i, "flags": 1} for i in range(4)],
                    "by_family": {"known_fact": {"requests": 30, "tokens": 4000}, "harmful": {"requests": 10,
                                                                                              "tokens": 1200}},
                    "top_flag_categories": [{"category": "malware", "count": 3}]}, None
            if parts[1] == "triage" and method == "GET":
                return 200, {"data": [{
                    "id": 11, "source": "feedback", "category": "thumbs_down", "message_id": 3,
                    "messages": [{"id": 2, "role": "user", "content": "<b>hi</b> who wrote Hamlet?"},
                                 {"id": 3, "role": "assistant", "content": "Bob"}],
                    "reply": "Bob <img src=x onerror=\"window.pwned=1\">", "feedback_reason": "wrong author"}]}, None
            if parts[1] == "triage":
                return 200, {"item": {"id": int(parts[2]), "label": body["label"]}}, None
            if parts[1] == "export":
                return 200, {"files": {"sft": "exports/sft.jsonl", "preferences": "exports/prefs.jsonl",
                                       "redteam": "exports/redteam.jsonl"},
                             "counts": {"sft": 5, "preferences": 2, "redteam": 1}}, None
    return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}, None


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=self.server_root, **kwargs)

    def log_message(self, *args):
        pass

    def end_headers(self):
        if not self.path.startswith("/mdtest/"):
            self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self):
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            return self.api("GET")
        if path in PAGES:
            self.path = PAGES[path]
        return super().do_GET()

    def do_POST(self):
        self.api("POST")

    def do_PATCH(self):
        self.api("PATCH")

    def do_DELETE(self):
        self.api("DELETE")

    def api(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}") if n else {}
        status, data, extra = handle_api(self, method, urlsplit(self.path).path, body)
        if status == "stream":
            return stream_events(self, data, slow=extra)
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if extra:
            self.send_header("Set-Cookie", extra)
        self.end_headers()
        self.wfile.write(raw)


# --- fixtures ---

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    shutil.copytree(STATIC, root / "static")
    (root / "mdtest").mkdir()
    for name in ("markdown.js", "sse.js"):
        shutil.copy(STATIC / name, root / "mdtest" / name)
    (root / "mdtest" / "index.html").write_text(MD_PAGE)
    (root / "mdtest" / "md_test.js").write_text(MD_JS)
    handler = type("RootedHandler", (Handler,), {"server_root": str(root)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.fake = FakeApi()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def fake(server):
    server.fake = FakeApi()
    return server.fake


@pytest.fixture
def page(browser, server, fake):
    """A fresh browser context on the fake server; fails the test on any JS error or CSP violation."""
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.server_port}")
    context.set_default_timeout(5000)
    pg = context.new_page()
    problems = []
    pg.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    pg.on("console", lambda m: problems.append(f"console: {m.text}")
          if "Content Security Policy" in m.text or "SyntaxError" in m.text else None)
    yield pg
    context.close()
    assert not problems, problems


def signup(page, name):
    page.goto("/")
    page.wait_for_selector("#login-name")
    page.fill("#login-name", name)
    page.fill("#login-password", "pw-123")
    page.click("#signup-submit")
    page.wait_for_selector("#app:not([hidden])")


# --- the Markdown renderer ---

HOSTILE = [
    "<script>window.pwned=1</script>",
    '<img src=x onerror="window.pwned=1">',
    "[x](javascript:window.pwned=1)",
    "[x](JaVaScRiPt:window.pwned=1)",
    "[x]( javascript:window.pwned=1 )",
    "[x](data:text/html,<script>window.pwned=1</script>)",
    "[x](vbscript:msgbox)",
    "[x](//evil.example/path)",
    '[x](https://ok.example/"onmouseover="window.pwned=1)',
    "[<img src=x onerror=window.pwned=1>](https://ok.example)",
    "![pixel](https://evil.example/p.png)",
    "<svg onload=window.pwned=1><circle r=1></svg>",
    "<iframe src=javascript:window.pwned=1></iframe>",
    "**<img src=x onerror=window.pwned=1>**",
    "- <script>window.pwned=1</script>\n- `<img src=x onerror=window.pwned=1>`",
    "# <svg onload=window.pwned=1>",
    "> <img src=x onerror=window.pwned=1>",
    "```html\n<script>window.pwned=1</script>\n<img src=x onerror=window.pwned=1>\n```",
    '```" onload="window.pwned=1\n**not bold** [x](https://ok.example)\n```',
    "~~~\n<svg onload=window.pwned=1>\n",  # an unclosed fence, as mid-stream
    "<https://ok.example/\" onclick=\"window.pwned=1>",
    "https://ok.example/<img src=x onerror=window.pwned=1>",
    "<a href=\"javascript:window.pwned=1\">click</a> <style>body{display:none}</style>",
]

RENDER_ALL = """(texts) => texts.map((t) => {
  const d = document.createElement("div");
  d.className = "case";
  d.appendChild(window.renderMarkdown(t));
  document.getElementById("out").appendChild(d);
  return d.innerHTML;
})"""

SAFETY = """() => {
  const out = document.getElementById("out");
  const bad = [...out.querySelectorAll("*")].flatMap((el) => [...el.attributes]
      .filter((a) => /^on/i.test(a.name) || a.name === "style" || a.name === "src")
      .map((a) => el.tagName + " " + a.name));
  return {
    pwned: window.pwned,
    dangerous: out.querySelectorAll("script, img, svg, iframe, object, embed, style, a:not([href]), form").length,
    badAttrs: bad,
    hrefs: [...out.querySelectorAll("a")].map((a) => a.getAttribute("href")),
    tags: [...new Set([...out.querySelectorAll("*")].map((el) => el.tagName.toLowerCase()))],
    text: out.textContent,
  };
}"""


@pytest.fixture(scope="module")
def md(browser, server):
    """One page with markdown.js and sse.js loaded (no CSP: the renderer must be safe on its own)."""
    context = browser.new_context()
    context.set_default_timeout(5000)
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"http://127.0.0.1:{server.server_port}/mdtest/index.html")
    pg.wait_for_function("window.mdReady === true")
    yield pg
    context.close()
    assert not errors, errors


def test_markdown_never_runs_or_builds_markup_from_model_text(md):
    page = md
    page.evaluate("() => { document.getElementById('out').textContent = ''; }")
    page.evaluate(RENDER_ALL, HOSTILE)
    page.wait_for_timeout(300)  # let any onerror/onload that slipped through fire
    r = page.evaluate(SAFETY)
    assert r["pwned"] is None
    assert r["dangerous"] == 0 and r["badAttrs"] == []
    assert set(r["tags"]) <= {"div", "p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "h1", "a",
                              "blockquote"}
    assert r["hrefs"] and all(h.startswith("https://ok.example") for h in r["hrefs"]), r["hrefs"]
    # the hostile text is still shown, as text
    for shown in ("<script>window.pwned=1</script>", "[x](javascript:window.pwned=1)", "<svg onload=window.pwned=1>",
                  "![pixel](https://evil.example/p.png)", "**not bold**", "<style>body{display:none}</style>"):
        assert shown in r["text"]

    # positive control: the same string through innerHTML does run, so the check above could have failed
    page.evaluate("""() => { const d = document.createElement("div");
        d.innerHTML = '<img src=x onerror="window.control=1">'; document.body.appendChild(d); }""")
    page.wait_for_function("window.control === 1")


@pytest.mark.parametrize("text, html", [
    ("Hello **bold** and *it* and `x<y`", "<p>Hello <strong>bold</strong> and <em>it</em> and <code>x&lt;y</code></p>"),
    ("line one\nline two\n\nnext para", "<p>line one<br>line two</p><p>next para</p>"),
    ("snake_case_name and __strong__ and _em_", "<p>snake_case_name and <strong>strong</strong> and <em>em</em></p>"),
    ("***both***", "<p><strong><em>both</em></strong></p>"),
    ("2 * 3 * 4", "<p>2 * 3 * 4</p>"),
    ("- a\n- **b**\n  - nested\n- c",
     "<ul><li>a</li><li><strong>b</strong><ul><li>nested</li></ul></li><li>c</li></ul>"),
    ("3. three\n4. four", '<ol start="3"><li>three</li><li>four</li></ol>'),
    ("## Title *x*\ntext", "<h2>Title <em>x</em></h2><p>text</p>"),
    ("```python\nx = '**no**'\n# not a heading\n```\nafter",
     '<pre data-lang="python"><code class="language-python">x = \'**no**\'\n# not a heading</code></pre><p>after</p>'),
    ("see [the docs](https://example.com/a?b=1&c=2)",
     '<p>see <a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer nofollow">'
     "the docs</a></p>"),
    ("visit https://example.com/x.", '<p>visit <a href="https://example.com/x" target="_blank" '
     'rel="noopener noreferrer nofollow">https://example.com/x</a>.</p>'),
    ("[bad](javascript:alert(1)) and \\*escaped\\*", "<p>[bad](javascript:alert(1)) and *escaped*</p>"),
    ("> quoted **text**\n\n---", "<blockquote><p>quoted <strong>text</strong></p></blockquote><hr>"),
    ("``code with ` tick``", "<p><code>code with ` tick</code></p>"),
    ("**unclosed bold", "<p>**unclosed bold</p>"),
])
def test_markdown_renders_the_right_elements(md, text, html):
    assert md.evaluate(RENDER_ALL, [text]) == [html]


def test_sse_parser_handles_split_chunks_and_line_endings(md):
    got = md.evaluate("""(parts) => { const p = new window.SSEParser(); const out = [];
        for (const c of parts) out.push(...p.push(c)); out.push(...p.end()); return out; }""",
                        ['data: {"type":"de', 'lta","text":"a\\nb"}\n', "\n: comment\r\n", "event: x\r\ndata: 1\r",
                         "\n\r\ndata:2\ndata: 3\n\ndata: [DONE]\n\n", "data: tail"])
    assert got == ['{"type":"delta","text":"a\\nb"}', "1", "2\n3", "[DONE]", "tail"]


# --- the pages ---

@pytest.mark.parametrize("path", ["/", "/rate", "/admin"])
def test_pages_load_and_ask_to_sign_in(page, path):
    page.goto(path)
    page.wait_for_selector("body[data-ready='1']")
    assert page.is_visible("#auth-panel") and page.is_visible("#login-name") and page.is_visible("#login-password")
    assert page.is_visible("#login-submit") and page.is_visible("#signup-submit")
    assert page.is_hidden("#app")
    if path == "/":
        assert "incorrect or harmful" in page.inner_text("#preview-notice")
        assert "private" in page.inner_text("#preview-notice")


def test_login_errors_are_shown_and_roles_gate_links(page, fake):
    page.goto("/")
    page.fill("#login-name", "ana")
    page.fill("#login-password", "nope")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.inner_text("#login-error") == "wrong name or password"
    page.click("#signup-submit")
    page.wait_for_selector("#app:not([hidden])")
    assert page.is_hidden("#nav-rate") and page.is_hidden("#nav-admin")
    page.goto("/rate")
    page.wait_for_selector("#forbidden:not([hidden])")
    assert page.is_hidden("#app")
    # signed-out visitors of /admin are sent to /?next=/admin; signing in goes back there
    page.click("#logout")
    page.wait_for_selector("#auth-panel:not([hidden])")
    page.goto("/?next=/admin")
    page.fill("#login-name", "admin-cy")
    page.fill("#login-password", "pw")
    page.click("#signup-submit")
    page.wait_for_url("**/admin")
    page.wait_for_selector(".metric-card")


def test_chat_streams_feedback_regenerate_rename_delete(page, fake):
    signup(page, "ana")
    page.fill("#message-input", "hello there")
    page.press("#message-input", "Enter")
    reply = page.locator(".message.assistant").last
    reply.locator("strong").wait_for()
    page.wait_for_selector(".message.assistant:not(.streaming) .thumb-up:enabled")
    body = reply.locator(".message-body")
    assert body.locator("strong").inner_text() == "bold" and body.locator("code").inner_text() == "a<b"
    assert body.locator("li").all_inner_texts() == ["one", "two"]
    assert body.locator("a").get_attribute("href") == "https://example.com/docs"
    assert body.locator("img").count() == 0 and "onerror" in body.inner_text()
    assert page.locator(".message.user").last.inner_text().endswith("hello there")
    assert page.evaluate("window.pwned") is None

    # thumbs down with a reason on this reply
    msg_id = reply.get_attribute("data-message-id")
    reply.locator(".thumb-down").click()
    reply.locator(".feedback-reason").fill("made up a fact")
    reply.locator(".feedback-submit").click()
    reply.locator(".feedback-status").wait_for()
    assert "recorded" in reply.locator(".feedback-status").inner_text().lower()
    assert reply.get_attribute("data-feedback") == "down"
    assert fake.posted(f"/api/messages/{msg_id}/feedback") == [{"rating": "down", "reason": "made up a fact"}]

    # regenerate replaces the last reply; the new one can get a thumbs up
    assert page.locator(".regenerate:visible").count() == 1
    page.locator(".regenerate:visible").click()
    page.wait_for_function(f"""() => {{ const m = [...document.querySelectorAll('.message.assistant')];
        return m.length === 1 && m[0].dataset.messageId !== '{msg_id}' && !m[0].classList.contains('streaming'); }}""")
    assert fake.posted("/regenerate") == [{}]
    new = page.locator(".message.assistant").last
    new.locator(".thumb-up").click()
    new.locator(".feedback-submit").click()
    new.locator(".feedback-status").wait_for()
    assert fake.posted(f"/api/messages/{new.get_attribute('data-message-id')}/feedback") == [{"rating": "up",
                                                                                             "reason": ""}]

    # the sidebar: the server titled the chat; rename, reload keeps feedback, delete
    item = page.locator("#conversation-list li.conversation")
    item.locator(".conversation-title").filter(has_text="hello there").wait_for()
    item.locator(".conversation-rename").click()
    page.fill(".conversation-rename-input", "Renamed chat")
    page.press(".conversation-rename-input", "Enter")
    page.locator(".conversation-title", has_text="Renamed chat").wait_for()
    page.click("#new-chat")
    assert page.locator(".message").count() == 0
    page.locator(".conversation-title", has_text="Renamed chat").click()
    page.wait_for_selector(".message.assistant[data-feedback='up']")
    page.locator(".conversation-delete").click()
    page.locator(".conversation-delete-confirm").click()
    page.wait_for_selector("#conversation-list .conversation", state="detached")
    assert [m for m, _, _ in fake.calls if m in ("PATCH", "DELETE")] == ["PATCH", "DELETE"]


def test_chat_stop_aborts_the_stream(page, fake):
    signup(page, "ana")
    page.fill("#message-input", "slow")
    page.click("#send")
    page.locator(".message.assistant.streaming .message-body", has_text="Thinking").wait_for()
    assert page.is_visible("#stop") and page.is_hidden("#send")
    page.click("#stop")
    page.wait_for_selector(".message.assistant .message-note[data-finish-reason='stopped']")
    assert page.is_visible("#send") and page.is_hidden("#stop")
    assert page.locator(".message.assistant .thumb-down").is_enabled()
    assert fake.disconnected.wait(5), "the server never saw the browser hang up"


def test_chat_server_errors_are_shown_and_the_message_kept(page, fake):
    signup(page, "ana")
    page.fill("#message-input", "overloaded")
    page.click("#send")
    page.wait_for_selector("#chat-error:not([hidden])")
    assert page.inner_text("#chat-error") == "the server is busy, try again in 2 s"
    assert page.input_value("#message-input") == "overloaded"
    assert page.locator(".message").count() == 0


def test_chat_side_by_side_choice_and_moderation_notice(page, fake):
    signup(page, "ana")
    page.check("#compare-toggle")
    page.fill("#message-input", "flagme")
    page.click("#send")
    page.wait_for_selector(".compare .compare-choice:not([hidden])")
    assert page.locator(".moderation-notice[data-action='flag']").inner_text().count("malware") == 1
    cols = page.locator(".compare-column")
    assert cols.count() == 2
    a, b = (cols.nth(i).locator(".message.assistant") for i in range(2))
    assert a.locator("strong").first.inner_text() == "bold"
    # the blocked reply B: its streamed text is replaced by the refusal, with a notice inside it
    assert b.locator(".message-body").inner_text() == "Sorry, I can't help with that."
    assert "toxic" in b.locator(".moderation-notice[data-action='block']").inner_text()
    assert b.get_attribute("data-finish-reason") == "content_filter"
    assert b.locator(".thumb-down").is_enabled()  # every reply can be rated, in compare mode too
    a_id, b_id = a.get_attribute("data-message-id"), b.get_attribute("data-message-id")
    assert fake.posted("/messages")[-1] == {"content": "flagme", "compare": True}
    page.click(".choose-b")
    page.wait_for_selector(".choice-status[data-choice='b']")
    assert page.locator(".compare").count() == 0
    assert page.locator(".message.assistant").count() == 1
    assert page.locator(".message.assistant").get_attribute("data-message-id") == b_id
    assert fake.posted("/choose") == [{"chosen": int(b_id), "rejected": int(a_id)}]
    assert page.locator(".regenerate:visible").count() == 1


def test_rate_page_validates_a_permutation_and_submits(page, fake):
    signup(page, "admin-ana")
    assert page.is_visible("#nav-rate") and page.is_visible("#nav-admin")
    page.click("#nav-rate")
    page.wait_for_selector("#rate-task:not([hidden]) .task-response")
    assert page.locator("#criteria-guide dt").all_text_contents() == ["helpful", "truthful"]
    assert page.locator(".task-response").count() == 3
    assert page.locator(".task-message.user strong").inner_text() == "2+2"
    assert page.locator("#task-responses script").count() == 0 and page.evaluate("window.pwned") is None
    assert page.get_attribute("#rate-progress", "data-done") == "0"
    ranks = page.locator(".rank-select")
    for i, r in enumerate(["2", "1", "2"]):
        ranks.nth(i).select_option(r)
    page.click("#rate-submit")
    page.wait_for_selector("#rate-error:not([hidden])")
    assert "different rank" in page.inner_text("#rate-error") and not fake.posted("/api/rate/task")
    ranks.nth(2).select_option("3")
    page.locator(".criterion-select[data-criterion='truthful']").select_option("1")
    page.click("#rate-submit")
    page.wait_for_selector("#rate-empty:not([hidden])")
    assert fake.posted("/api/rate/task/7") == [{"ranking": [1, 0, 2], "criteria": {"truthful": 1}}]
    assert "3 comparisons" in page.inner_text("#rate-status")
    assert page.get_attribute("#rate-progress", "data-done") == "1"
    assert "75.0%" in page.inner_text("#agreement-stats")


def test_admin_page_metrics_triage_and_export(page, fake):
    signup(page, "admin-bo")
    page.goto("/admin")
    page.wait_for_selector(".metric-card[data-metric='latency_p95']")
    card = lambda k: page.inner_text(f".metric-card[data-metric='{k}'] .metric-value")  # noqa: E731
    assert card("requests") == "40" and card("latency_p95") == "300 ms" and card("ttft_p99") == "60 ms"
    assert card("flag_rate") == "10.0%" and card("feedback_rate") == "35.0%"  # (8 up + 6 down) / 40
    for s in ("requests", "thumbs_down", "flags"):
        points = page.get_attribute(f"#metrics-chart polyline[data-series='{s}']", "points")
        assert len(points.split()) == 4
    assert page.locator("#family-table tbody tr").count() == 2
    assert page.inner_text("#flag-categories tr[data-category='malware']").split() == ["malware", "3"]

    row = page.locator("#triage-table tr.triage-row[data-id='11']")
    assert "<b>hi</b>" in row.locator(".triage-conversation").inner_text()
    assert "Bob" not in row.locator(".triage-conversation").inner_text()  # the reply is its own column
    assert row.locator("img").count() == 0 and page.evaluate("window.pwned") is None
    assert row.locator(".triage-feedback").inner_text() == "wrong author"
    row.locator(".triage-save").click()
    assert "label" in row.locator(".triage-status").inner_text().lower() and not fake.posted("/api/admin/triage")
    row.locator(".triage-label").select_option("false_fact")
    row.locator(".triage-better").fill("Shakespeare wrote Hamlet.")
    row.locator(".triage-send").check()
    row.locator(".triage-save").click()
    page.wait_for_selector("tr.triage-row.saved[data-label='false_fact']")
    assert fake.posted("/api/admin/triage/11") == [{"label": "false_fact", "send": True,
                                                    "better_reply": "Shakespeare wrote Hamlet."}]

    page.fill("#export-since", "2026-01-01")
    page.click("#export-run")
    page.wait_for_selector("#export-result tr[data-kind='preferences']")
    assert fake.posted("/api/admin/export") == [{"since": "2026-01-01"}]
    assert page.inner_text("#export-result tr[data-kind='sft']").split() == ["sft", "exports/sft.jsonl", "5"]
