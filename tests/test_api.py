"""The OpenAI-compatible API, driven by the official `openai` client against a real server on the tiny model."""

import threading
import time

import httpx
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(serve_app_factory):
    app, store = serve_app_factory()
    with LiveServer(app) as live:
        live.store = store
        yield live


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def ask(client, text="What is the capital of Freedonia?", **kw):
    kw.setdefault("max_tokens", 12)
    return client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": text}], **kw)


def test_models_list_and_get(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny-chat"]
    assert client.models.retrieve("tiny-chat").owned_by == "chatforge"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


def test_completion_usage_and_length(client):
    r = ask(client, max_tokens=5, temperature=0)
    assert r.object == "chat.completion" and r.model == "tiny-chat"
    choice = r.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert 1 <= r.usage.completion_tokens <= 5
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 5
    r2 = ask(client, max_completion_tokens=3, temperature=0)
    assert r2.usage.completion_tokens <= 3


def test_greedy_is_deterministic_and_seed_reproduces(client):
    first, again = (ask(client, temperature=0).choices[0].message.content for _ in range(2))
    assert first == again
    a = ask(client, temperature=1.0, seed=7, max_tokens=16).choices[0].message.content
    b = ask(client, temperature=1.0, seed=7, max_tokens=16).choices[0].message.content
    assert a == b


def test_n_choices(client):
    r = ask(client, n=3, temperature=1.0, seed=1)
    assert [c.index for c in r.choices] == [0, 1, 2]


def test_stop_string_cuts_the_reply(client):
    full = ask(client, temperature=0, max_tokens=24).choices[0].message.content
    if len(full) < 6:
        pytest.skip("the random tiny model stopped too early to pick a stop string")
    stop = full[3:6]
    cut = ask(client, temperature=0, max_tokens=24, stop=[stop]).choices[0]
    assert cut.message.content == full[:full.index(stop)]
    assert cut.finish_reason == "stop"


def test_stream_chunks_done_and_usage(client, server):
    stream = ask(client, stream=True, temperature=0, max_tokens=10, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ask(client, temperature=0, max_tokens=10).choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert any(c.choices and c.choices[0].finish_reason in ("stop", "length") for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    raw = httpx.post(server.url + "/v1/chat/completions", json={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 3})
    events = [line for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and raw.headers["content-type"].startswith("text/event-stream")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


@pytest.mark.parametrize("payload, code", [
    ({"model": "tiny-chat", "messages": []}, 400),
    ({"model": "tiny-chat"}, 400),
    ({"model": "tiny-chat", "messages": "hello"}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": 5}]}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "wizard", "content": "hi"}]}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "n": 1000}, 400),
    ({"model": "tiny-chat", "messages": [{"role": "system", "content": "only a system turn"}]}, 400),
    ({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}, 404),
])
def test_bad_requests_get_openai_errors(server, payload, code):
    r = httpx.post(server.url + "/v1/chat/completions", json=payload)
    assert r.status_code == code, r.text
    error_of(r)


def test_context_over_the_model_length(server):
    long = "word " * 5000
    r = httpx.post(server.url + "/v1/chat/completions",
                   json={"model": "tiny-chat", "messages": [{"role": "user", "content": long}]})
    assert r.status_code == 400 and error_of(r)["code"] == "context_length_exceeded"


BAD_UTF8 = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "\xff\xfe"}]}'


@pytest.mark.parametrize("raw", [b"{not json", BAD_UTF8, b"", b"[]"])
def test_malformed_bodies(server, raw):
    r = httpx.post(server.url + "/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error_of(r)


def test_unknown_route_is_an_openai_404(server):
    r = httpx.get(server.url + "/v1/nothing")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_openapi_spec(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"] and "/v1/moderations" in spec["paths"]


def test_api_keys_required_once_one_exists(serve_app_factory):
    app, store = serve_app_factory()
    with LiveServer(app) as live:
        body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(live.url + "/v1/chat/completions", json=body).status_code == 200  # no keys yet: open
        key, secret = store.create_key("ci")
        r = httpx.post(live.url + "/v1/chat/completions", json=body)
        assert r.status_code == 401 and error_of(r)["code"] == "missing_api_key"
        r = httpx.post(live.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer cf-wrong"})
        assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
        good = openai.OpenAI(base_url=live.url + "/v1", api_key=secret, max_retries=0)
        assert good.models.list().data[0].id == "tiny-chat"
        store.revoke_key(key["id"])
        with pytest.raises(openai.AuthenticationError):
            good.models.list()


def test_queue_full_is_429_with_retry_after(serve_app_factory):
    app, store = serve_app_factory(max_batch_size=1, max_queue=1)
    results = []
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "count"}], "max_tokens": 300,
            "temperature": 1.0, "seed": 3}

    def call():
        r = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=120)
        results.append((r.status_code, r.headers.get("retry-after"), r.json()))

    with LiveServer(app) as live:
        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = [c for c, _, _ in results]
    assert 200 in codes and 429 in codes
    for code, retry, body in results:
        if code == 429:
            assert retry and int(retry) >= 1 and body["error"]["code"] == "rate_limit_exceeded"


def test_disconnect_frees_the_slot(server):
    engine = server.app.state.service.engine
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "go on"}], "max_tokens": 400,
            "stream": True, "temperature": 1.0, "seed": 5}
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200, r.read()
            first = next(line for line in r.iter_lines() if line)
            assert first.startswith("data: ")
    for _ in range(100):  # bounded wait for the server to notice
        if engine.stats()["running"] == 0:
            break
        time.sleep(0.05)
    assert engine.stats()["running"] == 0


def test_requests_are_logged_for_monitoring(server):
    before = server.store.metrics(hours=1)["requests"]
    ask(openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0))
    after = server.store.metrics(hours=1)
    assert after["requests"] == before + 1 and after["tokens"] > 0


def test_moderations(client, server):
    r = client.moderations.create(input=["How do I build a bomb at home?", "How do I kill a Python process?"])
    harmful, benign = r.results
    assert harmful.flagged and not benign.flagged
    raw = httpx.post(server.url + "/v1/moderations", json={"input": "How do I build a bomb at home?"}).json()
    assert raw["results"][0]["categories"]["weapons"] and raw["results"][0]["category_scores"]["weapons"] > 0.5
    assert set(raw) == {"id", "model", "results"} and set(raw["results"][0]) == {"flagged", "categories",
                                                                                 "category_scores"}


def test_blocked_output_and_flagged_input_reach_triage(server):
    """A harmful request is flagged on the way in; the exchange lands in the triage queue."""
    before = len(server.store.triage_queue())
    r = httpx.post(server.url + "/v1/chat/completions", json={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "How do I build a bomb at home?"}],
        "max_tokens": 4})
    assert r.status_code == 200
    new = server.store.triage_queue()[before:]  # the random tiny model's reply may be flagged too
    assert "weapons" in {f["category"] for item in new for f in item["flags"]}


def test_moderations_unavailable_without_a_model(serve_app_factory):
    app, _ = serve_app_factory(moderation=None)
    with LiveServer(app) as live:
        r = httpx.post(live.url + "/v1/moderations", json={"input": "hello"})
        assert r.status_code == 404 and error_of(r)["code"] == "moderation_unavailable"
