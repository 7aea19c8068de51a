"""End to end in real headless Chromium (Debian's, driven by Playwright) against a real server on the tiny model:
a user chats and thumbs a reply down with a reason; an admin finds it in triage, labels it, exports, and the
export reads back as training data. And a model reply carrying script never runs in the page."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
if os.environ.get("CI") and not Path(CHROMIUM).exists():
    raise RuntimeError("CI must run the browser tests: install Debian's chromium (scripts/setup.sh does, as root)")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]


@pytest.fixture(scope="module")
def server(serve_app_factory):
    app, store = serve_app_factory(default_max_tokens=24, compare_rate=0.0)
    store.create_user("boss", "pw-boss", "admin")
    with LiveServer(app) as live:
        live.store = store
        yield live


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def login(page, url, name, password, signup=False):
    page.goto(url)
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#signup-submit" if signup else "#login-submit")
    page.wait_for_selector("#user-name")


def test_chat_feedback_triage_export(server, page, tmp_path):
    from chatforge.data.comparisons import read_comparisons
    from chatforge.data.conversations import load_conversations

    login(page, server.url + "/", "uma", "pw-uma-1", signup=True)
    assert page.is_visible("#preview-notice")
    page.click("#new-chat")
    page.fill("#message-input", "What is the capital of Freedonia?")
    page.click("#send")
    reply = page.locator(".message.assistant").last
    reply.wait_for()
    page.wait_for_selector(".message.assistant[data-finish-reason]:not(.streaming)")
    message_id = int(reply.get_attribute("data-message-id"))
    stored = server.store.get_message(message_id)
    assert stored["role"] == "assistant" and stored["finish_reason"] in ("stop", "length")
    reply.locator(".thumb-down").click()
    reply.locator(".feedback-reason").fill("It invented a capital.")
    reply.locator(".feedback-submit").click()
    page.wait_for_selector(".message.assistant[data-feedback=down]")
    page.click("#logout")
    page.wait_for_selector("#login-name")

    login(page, server.url + "/?next=/admin", "boss", "pw-boss")
    page.wait_for_url("**/admin")
    row = page.locator("#triage-table tr.triage-row:has-text('It invented a capital.')")
    row.wait_for()
    row.locator("select.triage-label").select_option("false_fact")
    row.locator(".triage-better").fill("I don't know of a country called Freedonia.")
    row.locator(".triage-send").check()
    row.locator(".triage-save").click()
    page.wait_for_selector("#triage-table tr.triage-row.saved[data-label=false_fact]")
    page.click("#export-run")
    page.wait_for_selector("#export-result table.export-files tr[data-kind=sft]")
    exports = Path(server.app.state.config.data_dir) / "exports"
    sft = load_conversations(exports / "sft.jsonl")
    assert any(c[-1]["content"] == "I don't know of a country called Freedonia." and
               c[0]["content"] == "What is the capital of Freedonia?" for c in sft)
    assert any(c.chosen == "I don't know of a country called Freedonia." for c in
               read_comparisons(exports / "preferences.jsonl"))
    assert page.errors == []


HOSTILE = ('Here you go <script>window.pwned = 1</script> and <img src=x onerror="window.pwned = 2"> '
           'and [click](javascript:window.pwned=3) **bold**')


def test_model_output_never_runs_script(server, page, monkeypatch):
    """A reply streamed live, and the same reply loaded from history, render as text."""
    svc = server.app.state.service
    real_texts = svc.texts

    async def hostile_texts(handle, stops, reply):
        handle.cancel()
        for piece in (HOSTILE[:20], HOSTILE[20:60], HOSTILE[60:]):
            reply.text += piece
            yield piece
        reply.finish_reason = "stop"

    monkeypatch.setattr(svc, "texts", hostile_texts)
    login(page, server.url + "/", "vic", "pw-vic-1", signup=True)
    page.click("#new-chat")
    page.fill("#message-input", "say something")
    page.click("#send")
    page.wait_for_selector(".message.assistant[data-finish-reason]:not(.streaming)")
    monkeypatch.setattr(svc, "texts", real_texts)
    body = page.locator(".message.assistant .message-body").last
    assert "<script>" in body.inner_text() and body.locator("strong").inner_text() == "bold"
    assert body.locator("script, img").count() == 0
    page.reload()
    page.locator("#conversation-list li.conversation .conversation-title").first.click()
    page.wait_for_selector(".message.assistant .message-body")
    assert page.locator(".message.assistant .message-body script, .message.assistant .message-body img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.errors == []
