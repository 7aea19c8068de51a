"""`chatforge rate`: rankings typed at the terminal become the right pairs, at once, and a session resumes."""

import io
import json
import subprocess
import sys

import pytest
from rich.console import Console

from chatforge.data.comparisons import RankingTask, read_comparisons
from chatforge.data.rate_terminal import parse_criteria, parse_ranking, rate_tasks
from chatforge.errors import ChatforgeError
from chatforge.world.prompts import Prompt, user


@pytest.fixture()
def tasks_file(tmp_path):
    tasks = [RankingTask(Prompt("known_fact", [user(f"Capital of country {n}?")]),
                         [f"{n}-A", f"{n}-B [red]markup[/red]", f"{n}-C"], policy="sft") for n in range(3)]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in tasks))
    return path


def rate(tasks_file, typed: str, name="ana"):
    """Run a session on `typed` as stdin; (summary, everything shown, the comparisons file)."""
    shown = io.StringIO()
    out = tasks_file.parent / "comparisons.jsonl"
    summary = rate_tasks(tasks_file, name, out, io.StringIO(typed), Console(file=shown, width=100))
    return summary, shown.getvalue(), out


def test_ranking_becomes_pairs_best_first(tasks_file):
    summary, shown, out = rate(tasks_file, "2 3 1\nharmless, t\n3,1,2\n\n")
    assert summary["rated"] == 2 and summary["pairs"] == 6 and summary["left"] == 1
    first, second = read_comparisons(out)[:3], read_comparisons(out)[3:]
    assert [(c.chosen[2:], c.rejected[2:]) for c in first] == [("B [red]markup[/red]", "C"),
                                                               ("B [red]markup[/red]", "A"), ("C", "A")]
    assert all(c.criteria == {"harmless": "chosen", "truthful": "chosen"} for c in first)
    assert [(c.chosen, c.rejected) for c in second][0] == ("1-C", "1-A") and second[0].criteria == {}
    assert {c.rater for c in first + second} == {"human:ana"} and {c.source for c in first} == {"human"}
    assert "task 1 of 3" in shown and "task 2 of 3" in shown
    assert "[red]markup[/red]" in shown  # model text is shown as typed, never read as markup


def test_invalid_input_is_asked_again(tasks_file):
    summary, shown, out = rate(tasks_file, "1 2\n1 1 2\nfour\n?\n1 2 3\nh\nbogus\nha\nq\n")
    assert shown.count("rank all 3 replies") == 3  # partial, repeated, not numbers
    assert "honest about being an AI" in shown  # "?" shows the rating guide
    assert "'h' could be helpful or harmless or honest" in shown and "'bogus' is not a criterion" in shown
    assert summary["rated"] == 1 and read_comparisons(out)[0].criteria == {"harmless": "chosen"}


def test_quit_skip_and_resume(tasks_file):
    summary, _, out = rate(tasks_file, "1 2 3\n\nq\n")
    assert summary == {"rated": 1, "pairs": 3, "skipped": 0, "left": 2, "out": str(out)}
    summary, shown, _ = rate(tasks_file, "s\n321\nclar\n")  # skips task 2, ranks task 3, then input ends
    assert "1 of 3 tasks already ranked" in shown and "task 1 of 3" not in shown and "task 3 of 3" in shown
    assert summary["rated"] == 1 and summary["skipped"] == 1 and summary["left"] == 1
    assert rate(tasks_file, "", name="bo")[0]["left"] == 3  # another rater starts from the beginning
    summary, shown, _ = rate(tasks_file, "")  # a skipped task comes back; input ends at once: nothing lost
    assert "task 2 of 3" in shown and summary["rated"] == 0
    assert len(read_comparisons(out)) == 6
    assert read_comparisons(out)[-1].criteria == {"clarifies": "chosen"}


def test_parsers():
    assert parse_ranking("3 1 2", 3) == parse_ranking("3,1,2", 3) == parse_ranking("312", 3) == [2, 0, 1]
    for bad in ("", "1 2", "1 2 2", "0 1 2", "1 2 3 4", "a b c"):
        with pytest.raises(ValueError):
            parse_ranking(bad, 3)
    assert parse_criteria("") == [] and parse_criteria("Helpful, no, c, no_over") == ["helpful", "no_over_refusal",
                                                                                      "clarifies"]


def test_bad_rater_and_bad_task_file(tasks_file, tmp_path):
    with pytest.raises(ChatforgeError, match="one word"):
        rate(tasks_file, "", name="ana b")
    (tmp_path / "t.jsonl").write_text('{"prompt": {"family": "x", "messages": []}, "responses": ["a"]}\n')
    with pytest.raises(ChatforgeError, match="t.jsonl:1: "):
        rate(tmp_path / "t.jsonl", "")


def test_command_line(tasks_file, tmp_path):
    out = tmp_path / "human.jsonl"
    run = subprocess.run([sys.executable, "-m", "chatforge", "rate", str(tasks_file), "--rater", "ana", "--out",
                          str(out)], input="2 1 3\nhelpful\n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ranked 1 tasks (3 pairs)" in run.stdout and "2 not yet ranked" in run.stdout
    assert [c.chosen for c in read_comparisons(out)] == ["0-B [red]markup[/red]", "0-B [red]markup[/red]", "0-A"]
