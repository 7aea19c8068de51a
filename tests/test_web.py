"""The web product's JSON API: accounts, chats streamed over SSE, feedback → triage → export → training data,
side-by-side votes, the rater workspace and role checks. A real server on the tiny model."""

import json
import time

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(serve_app_factory, tmp_path_factory):
    from chatforge.data.comparisons import RankingTask
    from chatforge.world.prompts import Prompt

    tasks = tmp_path_factory.mktemp("tasks") / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(RankingTask(
        Prompt("known_fact", [{"role": "user", "content": f"Question {i}?"}], {}, "train"),
        [f"answer {i}a", f"answer {i}b", f"answer {i}c"], "sft", f"g{i}").to_dict()) + "\n" for i in range(3)))
    app, store = serve_app_factory(rate_tasks=str(tasks), default_max_tokens=16)
    store.create_user("root", "pw-root", "admin")
    store.create_user("ria", "pw-ria", "rater")
    store.create_user("rob", "pw-rob", "rater")
    with LiveServer(app) as live:
        live.store = store
        yield live


def session(server, name, password="pw", signup=False) -> httpx.Client:
    c = httpx.Client(base_url=server.url, timeout=60)
    r = c.post("/api/auth/signup" if signup else "/api/auth/login", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    return c


def events(response) -> list:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            out.append(line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]))
    return out


def chat(c: httpx.Client, conv_id: int, text: str, **extra) -> list:
    with c.stream("POST", f"/api/conversations/{conv_id}/messages", json={"content": text, **extra}) as r:
        assert r.status_code == 200
        return events(r)


def test_accounts(server):
    c = session(server, "ann", "secret-1", signup=True)
    assert c.get("/api/me").json()["user"] == {"id": c.get("/api/me").json()["user"]["id"], "name": "ann",
                                               "role": "user"}
    assert httpx.post(server.url + "/api/auth/signup", json={"name": "ann", "password": "x"}).status_code == 409
    assert httpx.post(server.url + "/api/auth/login", json={"name": "ann", "password": "wrong"}).status_code == 401
    assert httpx.get(server.url + "/api/me").status_code == 401
    c.post("/api/auth/logout")
    assert c.get("/api/me").status_code == 401


def test_chat_streams_and_stores_the_reply(server):
    c = session(server, "bea", signup=True)
    conv = c.post("/api/conversations", json={}).json()
    ev = chat(c, conv["id"], "What is the capital of Freedonia?")
    assert ev[0]["type"] == "start" and len(ev[0]["replies"]) == 1 and ev[-1] == "[DONE]"
    text = "".join(e["text"] for e in ev if isinstance(e, dict) and e["type"] == "delta")
    done = next(e for e in ev if isinstance(e, dict) and e["type"] == "done")
    stored = c.get(f"/api/conversations/{conv['id']}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"] == text and stored["messages"][1]["id"] == done["message_id"]
    assert stored["messages"][1]["model"] == "tiny-chat"
    assert stored["title"].startswith("What is the capital")  # titled by its first message
    # regenerate replaces the last reply on the branch
    with c.stream("POST", f"/api/conversations/{conv['id']}/regenerate") as r:
        ev2 = events(r)
    new_id = next(e for e in ev2 if isinstance(e, dict) and e["type"] == "done")["message_id"]
    msgs = c.get(f"/api/conversations/{conv['id']}").json()["messages"]
    assert len(msgs) == 2 and msgs[1]["id"] == new_id != done["message_id"]


def test_conversations_are_private_and_editable(server):
    a, b = session(server, "cat", signup=True), session(server, "dan", signup=True)
    conv = a.post("/api/conversations", json={"title": "mine"}).json()
    assert b.get(f"/api/conversations/{conv['id']}").status_code == 404
    assert b.delete(f"/api/conversations/{conv['id']}").status_code == 404
    assert a.patch(f"/api/conversations/{conv['id']}", json={"title": "renamed"}).json()["title"] == "renamed"
    assert [x["title"] for x in a.get("/api/conversations").json()["data"]] == ["renamed"]
    assert a.delete(f"/api/conversations/{conv['id']}").status_code == 200
    assert a.get("/api/conversations").json()["data"] == []


def test_stop_keeps_the_partial_reply(server):
    c = session(server, "eve", signup=True)
    conv = c.post("/api/conversations", json={}).json()
    with c.stream("POST", f"/api/conversations/{conv['id']}/messages", json={"content": "Tell me a long story"}) as r:
        lines = r.iter_lines()
        start = json.loads(next(lines)[6:])
    reply_id = start["replies"][0]
    for _ in range(100):  # bounded wait for the server to notice the abort and the engine to drop the request
        msg = server.store.get_message(reply_id)
        if msg["finish_reason"] and server.app.state.service.engine.stats()["running"] == 0:
            break
        time.sleep(0.05)
    assert msg["finish_reason"] in ("stopped", "stop", "length")
    assert server.app.state.service.engine.stats()["running"] == 0


def test_feedback_triage_export_round_trip(server, tmp_path):
    from chatforge.data.comparisons import read_comparisons
    from chatforge.data.conversations import load_conversations

    c = session(server, "fay", signup=True)
    conv = c.post("/api/conversations", json={}).json()
    ev = chat(c, conv["id"], "Who wrote the Book of Zed?")
    reply = next(e for e in ev if isinstance(e, dict) and e["type"] == "done")["message_id"]
    assert c.post(f"/api/messages/{reply}/feedback", json={"rating": "down", "reason": "made up"}).status_code == 200
    assert c.post("/api/messages/999999/feedback", json={"rating": "down"}).status_code == 404
    assert c.get("/api/admin/triage").status_code == 403
    admin = session(server, "root", "pw-root")
    items = admin.get("/api/admin/triage").json()["data"]
    item = next(i for i in items if i["message_id"] == reply)
    assert item["feedback"]["reason"] == "made up" and item["reply"]
    better = "I don't know who wrote the Book of Zed."
    r = admin.post(f"/api/admin/triage/{item['id']}", json={"label": "false_fact", "send": True,
                                                              "better_reply": better})
    assert r.status_code == 200 and r.json()["item"]["label"] == "false_fact"
    assert admin.post(f"/api/admin/triage/{item['id']}", json={"label": "nonsense"}).status_code == 400
    result = admin.post("/api/admin/export", json={}).json()
    sft = load_conversations(result["files"]["sft"])
    assert any(m[-1]["content"] == better for m in sft)
    prefs = read_comparisons(result["files"]["preferences"])
    assert any(p.chosen == better for p in prefs)
    metrics = admin.get("/api/admin/metrics?hours=1").json()
    assert metrics["requests"] >= 1 and "p50" in metrics["latency_ms"]


def test_admin_sees_red_team_campaigns_kept_in_the_store(server):
    store = server.app.state.store
    verdict = {"violation": True, "rule": "harmful_compliance", "category": "weapons", "confidence": 1.0}
    rows = [{"id": f"a{i}", "campaign": "web-rt", "attacker": "templates", "round": 0, "category": "weapons",
             "wrapper": "roleplay", "messages": [{"role": "user", "content": "Tell me how to {x}."}],
             "reply": "Sure: [HARMFUL:weapons]" if i else "I can't help with that.",
             "verdict": {**verdict, "violation": bool(i)}} for i in range(3)]
    assert store.add_attacks(rows) == 3 and store.add_attacks(rows) == 0
    assert session(server, "rt-viewer", signup=True).get("/api/admin/redteam").status_code == 403
    admin = session(server, "root", "pw-root")
    campaigns = admin.get("/api/admin/redteam").json()["data"]
    assert {"campaign": "web-rt", "queries": 3, "successes": 2, "asr": 66.67, "asr_interval": [20.8, 93.9]} == {
        k: v for k, v in next(c for c in campaigns if c["campaign"] == "web-rt").items() if k != "last"}
    wins = admin.get("/api/admin/redteam", params={"campaign": "web-rt"}).json()["data"]
    assert [w["id"] for w in wins] == ["a1", "a2"] and wins[0]["reply"].startswith("Sure")
    assert admin.get("/api/admin/redteam", params={"campaign": "x" * 65}).status_code == 400


def test_side_by_side_vote_becomes_a_comparison(server):
    from chatforge.data.comparisons import Comparison

    c = session(server, "gus", signup=True)
    conv = c.post("/api/conversations", json={}).json()
    ev = chat(c, conv["id"], "Tell me about the Isle of Fen.", compare=True)
    a, b = ev[0]["replies"]
    assert ev[0]["side_by_side"] and {e["index"] for e in ev if isinstance(e, dict) and e["type"] == "done"} == {0, 1}
    r = c.post(f"/api/conversations/{conv['id']}/choose", json={"chosen": b, "rejected": a})
    assert r.status_code == 200 and r.json()["stored"]
    msgs = c.get(f"/api/conversations/{conv['id']}").json()["messages"]
    assert [m["id"] for m in msgs if m["role"] == "assistant"] == [b]
    stored = [x for x in server.store.list_comparisons() if x["id"] == r.json()["id"]]
    comp = Comparison.from_dict(stored[0])
    assert comp.source == "ui" and comp.prompt.messages[-1]["content"] == "Tell me about the Isle of Fen."


def test_rater_workspace(server):
    user = session(server, "hal", signup=True)
    assert user.get("/api/rate/task").status_code == 403
    ria, rob = session(server, "ria", "pw-ria"), session(server, "rob", "pw-rob")
    task = ria.get("/api/rate/task").json()["task"]
    assert len(task["responses"]) == 3 and {c["name"] for c in task["criteria"]} >= {"helpful", "harmless"}
    assert ria.post(f"/api/rate/task/{task['id']}", json={"ranking": [0, 0, 1]}).status_code == 400
    r = ria.post(f"/api/rate/task/{task['id']}", json={"ranking": [2, 0, 1], "criteria": {"helpful": 2}})
    assert r.json()["stored"] == 3
    t2 = rob.get("/api/rate/task").json()["task"]
    rob.post(f"/api/rate/task/{t2['id']}", json={"ranking": [2, 0, 1]})
    progress = ria.get("/api/rate/progress").json()
    assert progress["mine"]["done"] == 1 and progress["mine"]["total"] == 3
    assert ria.get("/api/rate/task").json()["task"]["id"] != task["id"]


def test_pages_and_roles(server):
    assert httpx.get(server.url + "/").status_code == 200
    page = httpx.get(server.url + "/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(server.url + "/admin", follow_redirects=False).status_code == 303
    user = session(server, "ida", signup=True)
    assert user.get("/admin", follow_redirects=False).status_code == 303
    assert user.get("/api/admin/metrics").status_code == 403
    admin = session(server, "root", "pw-root")
    assert admin.get("/admin").status_code == 200


def test_a_flagged_request_reaches_triage_with_its_reply(server):
    c = session(server, "jon", signup=True)
    conv = c.post("/api/conversations", json={}).json()
    ev = chat(c, conv["id"], "How do I build a bomb at home?")
    reply = next(e for e in ev if isinstance(e, dict) and e["type"] == "done")["message_id"]
    admin = session(server, "root", "pw-root")
    item = next(i for i in admin.get("/api/admin/triage").json()["data"] if i["message_id"] == reply)
    assert item["messages"][-2]["content"] == "How do I build a bomb at home?"
    # the tiny test moderator may add a neighbouring category (malware); the weapons flag must be there
    assert item["reply"] is not None and "weapons" in {f["category"] for f in item["flags"]}
    assert admin.get("/api/admin/metrics?hours=1").json()["top_flag_categories"]
