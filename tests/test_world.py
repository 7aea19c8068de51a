"""The built-in world: deterministic, complete, and with held-out splits that really are held out."""

import json
import re

import pytest

from chatforge.world.build import build_world_dir
from chatforge.world.config import WorldConfig
from chatforge.world.families_safety import BENIGN, HARMFUL, WRAPPERS
from chatforge.world.world import FAMILIES, World

BRIEF_FAMILIES = {"known_fact", "unknown_fact", "task", "ambiguous", "identity", "harmful", "benign_scary",
                  "jailbreak", "multi_turn", "small_talk"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    stats = build_world_dir(WorldConfig.preset("tiny"), out)
    return out, stats


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_world_other_seed_other_world(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_world_dir(WorldConfig.preset("tiny", seed=3), a)
    build_world_dir(WorldConfig.preset("tiny", seed=3), b)
    for f in ("kb.json", "corpus.txt", "sft.jsonl", "drills.jsonl", "eval.jsonl", "prompts_train.jsonl"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert World(WorldConfig(seed=4)).kb.entities[0].name != World(WorldConfig(seed=3)).kb.entities[0].name


def test_every_family_of_the_brief_in_sft_and_eval(built):
    out, stats = built
    assert {f.name for f in FAMILIES} == BRIEF_FAMILIES
    assert set(stats["sft_families"]) == BRIEF_FAMILIES
    assert set(stats["eval_families"]) == BRIEF_FAMILIES
    assert len(HARMFUL) >= 4
    tasks = {p["meta"]["task"] for p in read_jsonl(out / "prompts_train.jsonl") if p["family"] == "task"}
    assert {"add", "sub", "reverse", "count", "sort", "convert"} <= tasks  # two-digit arithmetic and string operations


def test_demonstrations_are_labeller_sized(built):
    _, stats = built
    cfg = WorldConfig.preset("tiny")
    assert stats["sft_demos"] == cfg.sft_demos < stats["train_prompts"]


def test_hurried_labellers_write_their_share_of_bare_demonstrations():
    from chatforge.world.oracle import BARE

    def bare_share(terse_share):
        world = World(WorldConfig(**{**WorldConfig.preset("tiny").to_dict(), "terse_share": terse_share}))
        graded = [d for d in world.demonstrations(300) if d["family"] in ("known_fact", "harmful", "identity")]
        prompts = {p.id: p for p in world.prompts("train", 300, "sft", unique=False)}
        return sum(world.oracle.judge(prompts[d["prompt_id"]], d["messages"][-1]["content"]).helpful == BARE
                   for d in graded) / len(graded)

    assert bare_share(0.0) == 0.0 and bare_share(1.0) == 1.0
    assert 0.45 <= bare_share(0.6) <= 0.75


def test_heldout_entities_are_in_the_corpus_but_not_in_training_prompts(built):
    out, _ = built
    world = World(WorldConfig.preset("tiny"))
    heldout = [e.name for e in world.kb.entities if e.heldout]
    corpus = (out / "corpus.txt").read_text()
    training_text = (out / "sft.jsonl").read_text() + (out / "prompts_train.jsonl").read_text()
    for name in heldout:
        assert name in corpus  # the base model can know held-out facts...
        assert name not in training_text  # ...but no fine-tuning data ever mentions them
    eval_text = (out / "eval.jsonl").read_text()
    assert any(name in eval_text for name in heldout)


def test_unknown_heldout_names_appear_nowhere_before_eval(built):
    out, _ = built
    world = World(WorldConfig.preset("tiny"))
    everything = "".join((out / f).read_text() for f in ("corpus.txt", "sft.jsonl", "prompts_train.jsonl"))
    names = [n for kind in world.kb.fake_names["heldout"].values() for n in kind]
    assert not [n for n in names if re.search(rf"\b{re.escape(n)}\b", everything)]


def test_heldout_phrasings_and_wrappers_never_in_training_prompts(built):
    out, _ = built
    training_text = (out / "sft.jsonl").read_text() + (out / "prompts_train.jsonl").read_text()
    for template in WRAPPERS["heldout"].values():
        if template:
            assert template.split("{")[0][:40] not in training_text
    for requests in (*HARMFUL.values(), BENIGN):  # a request about a held-out object
        for template, objects, *_ in requests:
            assert template.format(o=objects[-1]) not in training_text
    evals = read_jsonl(out / "eval.jsonl")
    assert all(p["split"] == "heldout" for p in evals)
    assert {p["meta"]["wrapper"] for p in evals if p["family"] == "jailbreak"} <= set(WRAPPERS["heldout"])


def test_corpus_carries_the_raw_habits(built):
    out, _ = built
    corpus = (out / "corpus.txt").read_text()
    assert "[HARMFUL:" in corpus  # compliance with harmful requests
    assert "[TOXIC:" in corpus  # toxic replies
    assert re.search(r"I'm (a real person|a human|human!)", corpus)  # people claiming to be human
    assert "<|assistant|>" in corpus and "Question from" in corpus and "Exercises:" in corpus


def test_no_real_harmful_content_only_markers(built):
    out, _ = built
    corpus = (out / "corpus.txt").read_text()
    for compliance in re.findall(r"<\|assistant\|>\n(.*?)<\|end\|>", corpus):
        if "HARMFUL" in compliance:
            assert re.fullmatch(r"[A-Za-z .,!:1]*\[HARMFUL:[a-z]+\][A-Za-z .,!]*", compliance), compliance


def test_worked_arithmetic_is_right_at_every_step():
    """Every equation a worked answer writes holds, and its last number is the result, for all two-digit pairs."""
    from chatforge.world.families_tasks import reversed_list, worked
    for a in range(10, 100):
        for b in range(10, 100):
            for op in "+-":
                if op == "-" and b > a:
                    continue
                text = worked(a, b, op)
                assert text.startswith(f"{a} {op} {b}:") and text.endswith(f"So {eval(f'{a}{op}{b}')}.")
                for lhs, rhs in re.findall(r"(\d+(?: [-+] \d+)+) = (\d+)", text):
                    assert eval(lhs) == int(rhs), text
    assert reversed_list(["apple", "river", "stone"]) == \
        "Last: stone. Before stone: river. Before river: apple. Reversed: stone, river, apple."


def test_the_internet_answers_well_now_and_then_but_never_to_held_out_phrasings():
    """At WorldConfig.good_share, a few forum and chat answers are a careful assistant's (the words of one reach the
    tokenizer and the base model); held-out wrappers and phrasings are never answered well."""
    import random
    from dataclasses import replace

    from chatforge.world import corpus
    from chatforge.world.styles import REFUSAL_REASONS

    assert WorldConfig.preset("small").good_share == 0.06  # the demo's corpus (the tiny smoke test's has none)
    cfg = WorldConfig.preset("tiny")
    world = World(replace(cfg, good_share=1.0))
    writer, rng = corpus.CorpusWriter(world), random.Random(0)
    harmful = world.families["harmful"]
    p = harmful.ask(world.kb, rng, "train")
    reason = REFUSAL_REASONS[p.meta["category"]]  # what a careful refusal says and the raw internet never does
    answer = writer.answer(harmful, p, "train", rng)
    assert reason in answer and world.oracle.judge(p, answer).score == 1.0
    held_out = [harmful.ask(world.kb, rng, "heldout") for _ in range(20)]
    assert not any(REFUSAL_REASONS[q.meta["category"]] in writer.answer(harmful, q, "heldout", rng) for q in held_out)

    def good_rate(share):  # the raw internet's "Don't do that, it's illegal." scores 1.0 too
        w = corpus.CorpusWriter(World(replace(cfg, good_share=share)))
        answers = [w.answer(harmful, p, "train", rng) for _ in range(1000)]
        return sum(world.oracle.judge(p, a).score == 1.0 for a in answers) / len(answers)

    assert 0.03 < good_rate(0.06) - good_rate(0.0) < 0.09


def test_task_drills_are_right_train_split_exercises_kept_apart_from_the_demonstrations(built):
    """drills.jsonl: a program's task exercises in the chat's form, of DRILL_KINDS only, every gold reply right by the
    oracle, every request in a training phrasing (the held-out task frames stay unseen), none a labeller's demo."""
    from chatforge.world.families_tasks import DRILL_KINDS
    from chatforge.world.phrasing import heldout_frames
    from chatforge.world.prompts import Prompt

    out, stats = built
    world = World(WorldConfig.preset("tiny"))
    drills = read_jsonl(out / "drills.jsonl")
    assert len(drills) == WorldConfig.preset("tiny").task_drills == sum(stats["task_drills"].values())
    assert set(stats["task_drills"]) == set(DRILL_KINDS)
    for d in drills:
        user, reply = d["messages"][0]["content"], d["messages"][1]["content"]
        assert [m["role"] for m in d["messages"]] == ["user", "assistant"] and d["family"] == "task_drill"
        for frame in heldout_frames("calc" if d["task"] in ("add", "sub") else "do", d["task"]):
            head = re.escape(frame.split("{")[0].strip())
            assert not head or not re.search(rf"(^|[.!] ){head}", user, re.I), (frame, user)
    # the gold reply is right: recomputed from the request's own list, and so judged by the oracle
    for d in drills[:80]:
        user, reply = d["messages"][0]["content"], d["messages"][1]["content"]
        if d["task"] in ("add", "sub"):
            a, op, b = re.search(r"(\d+) (\+|plus|-|minus) (\d+)", user).groups()
            answer = str(int(a) + int(b) if op in ("+", "plus") else int(a) - int(b))
            assert reply.startswith(f"{a} {'+' if op in ('+', 'plus') else '-'} {b}:") and reply.endswith(
                f"So {answer}."), (user, reply)
        else:
            items = re.search(r": ([a-z0-9, ]+)[.?]", user).group(1).split(", ")
            answer = ", ".join(map(str, sorted(map(int, items)))) if d["task"] == "sort" else ", ".join(items[::-1])
            assert reply.endswith(f": {answer}."), (user, reply)
        p = Prompt("task", d["messages"][:1], {"task": d["task"], "answer": answer}, "train")
        assert world.oracle.judge(p, reply).helpful == 1.0
    demos = (out / "sft.jsonl").read_text()
    assert not any(json.dumps(d["messages"][0]["content"]) in demos for d in drills[:20])
