"""The comparisons format: round trips, TRL and HH-RLHF import/export, ranking tasks to pairs, bad lines."""

import json

import pytest

from chatforge.cli import main
from chatforge.data.comparisons import Comparison, RankingTask, parse, read_comparisons, read_tasks, write_comparisons
from chatforge.errors import ChatforgeError
from chatforge.world.prompts import Prompt, assistant, user

CAPITAL = Prompt("known_fact", [user("What is the capital of Vordan?")], {"answer": "Quell", "attribute": "capital"})
MULTI = Prompt("multi_turn", [{"role": "system", "content": "Be brief."}, user("Who founded Ost?"),
                              assistant("Mira Hale.\n\nShe was a sailor."), user("And when?")])


def comparisons() -> list[Comparison]:
    return [Comparison(CAPITAL, "It is Quell.", "It is Brin.", "sim-0", {"truthful": "chosen", "helpful": "tie"},
                       0.31, "g-1", "simulated", "sft"),
            Comparison(MULTI, "In 1204.", "I am a human, I was there.", "human:ana", source="human")]


def as_triples(cs):
    return [(c.prompt.messages, c.chosen, c.rejected) for c in cs]


def test_round_trip_in_chatforge_format(tmp_path):
    write_comparisons(comparisons(), tmp_path / "c.jsonl")
    assert read_comparisons(tmp_path / "c.jsonl") == comparisons()
    write_comparisons(comparisons()[:1], tmp_path / "c.jsonl", append=True)
    assert len(read_comparisons(tmp_path / "c.jsonl")) == 3


@pytest.mark.parametrize("fmt", ["trl", "hh"])
def test_export_and_import_keep_prompt_chosen_rejected(tmp_path, fmt):
    write_comparisons(comparisons(), tmp_path / f"{fmt}.jsonl", fmt=fmt)
    back = read_comparisons(tmp_path / f"{fmt}.jsonl")
    assert as_triples(back) == as_triples(comparisons())  # the multi-turn one keeps its system turn and "\n\n"
    assert {c.rater for c in back} == {"import"} and {c.prompt.family for c in back} == {"imported"}


def test_trl_rows_in_every_shape():
    text = parse({"prompt": "hi", "chosen": "hello", "rejected": "go away"})
    msgs = parse({"prompt": [user("hi")], "chosen": [assistant("hello")], "rejected": [assistant("go away")]})
    assert as_triples([text]) == as_triples([msgs]) == [([user("hi")], "hello", "go away")]


def test_hh_multi_turn_transcripts():
    hh = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Capital of Vordan?\n\nAssistant: Quell.",
          "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Capital of Vordan?\n\nAssistant: No idea lol"}
    c = parse(hh)
    assert c.prompt.messages == [user("Hi"), assistant("Hello!"), user("Capital of Vordan?")]
    assert (c.chosen, c.rejected) == ("Quell.", "No idea lol")
    assert c.hh() == hh
    with pytest.raises(ValueError, match="differ before"):
        parse({**hh, "rejected": "\n\nHuman: Bye\n\nAssistant: ok"})


@pytest.mark.parametrize("line,words", [
    ("{oops", ["Expecting"]),
    ('["a list"]', ["expected a JSON object"]),
    ('{"prompt": "hi", "chosen": "a"}', ["missing field(s): rejected"]),
    ('{"prompt": {"messages": [{"role": "user", "content": "hi"}]}, "chosen": "a", "rejected": "b"}',
     ["missing field(s): rater"]),
    ('{"prompt": {"messages": [{"role": "user", "content": "hi"}]}, "chosen": "a", "rejected": "b", "rater": "x",'
     ' "criteria": ["helpful"]}', ["'criteria' must be an object"]),
    ('{"prompt": {"messages": ["hi"]}, "chosen": "a", "rejected": "b", "rater": "x"}', ["user turn"]),
    ('{"chosen": "Human: hi", "rejected": "Human: hi"}', ["end with an Assistant turn"]),
    ('{"text": "hello"}', ["expected chatforge comparisons"]),
])
def test_bad_lines_name_file_and_line(tmp_path, line, words):
    good = json.dumps(comparisons()[0].to_dict())
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(ChatforgeError) as e:
        read_comparisons(path)
    assert str(e.value).startswith(f"{path}:3: ") and all(w in str(e.value) for w in words), str(e.value)


def test_unreadable_files(tmp_path):
    (tmp_path / "bin.jsonl").write_bytes(b'{"prompt": "\xff"}\n')
    with pytest.raises(ChatforgeError, match="not valid UTF-8"):
        read_comparisons(tmp_path / "bin.jsonl")
    with pytest.raises(ChatforgeError, match="no such comparisons file"):
        read_comparisons(tmp_path / "none.jsonl")
    with pytest.raises(ChatforgeError, match="unknown comparisons format 'csv'"):
        write_comparisons(comparisons(), tmp_path / "x", fmt="csv")


def test_ranking_pairs_order_and_identical_replies():
    task = RankingTask(CAPITAL, ["A", "B", "C", "D"], policy="sft")
    pairs = task.pairs([2, 0, 3, 1], "human:ana", "human", utilities=[0.5, 0.1, 0.9, 0.3])
    assert len(pairs) == 4 * 3 // 2
    assert [(c.chosen, c.rejected) for c in pairs] == [("C", "A"), ("C", "D"), ("C", "B"), ("A", "D"), ("A", "B"),
                                                       ("D", "B")]
    assert pairs[0].margin == 0.4 and {c.group for c in pairs} == {task.group} and pairs[0].policy == "sft"
    dup = RankingTask(CAPITAL, ["A", "B", "A"])  # a repeated reply counts once, at its best place
    assert [(c.chosen, c.rejected) for c in dup.pairs([0, 2, 1], "r", "human")] == [("A", "B")]
    assert [(c.chosen, c.rejected) for c in dup.pairs([0, 1, 2], "r", "human")] == [("A", "B")]  # never B > A too


def test_ranking_tasks_file(tmp_path):
    task = RankingTask(CAPITAL, ["A", "B"])
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(task.to_dict()) + "\n" + json.dumps({**task.to_dict(), "responses": "AB"}) + "\n")
    with pytest.raises(ChatforgeError, match=r"tasks.jsonl:2: .*list of at least 2 strings"):
        read_tasks(path)
    path.write_text(json.dumps(task.to_dict()) + "\n")
    assert read_tasks(path) == [task]


def test_cli_convert(tmp_path, capsys):
    write_comparisons(comparisons(), tmp_path / "c.jsonl")
    assert main(["comparisons", "convert", str(tmp_path / "c.jsonl"), str(tmp_path / "hh.jsonl"), "--to", "hh"]) == 0
    assert "wrote 2 comparisons" in capsys.readouterr().out
    assert set(json.loads((tmp_path / "hh.jsonl").read_text().splitlines()[0])) == {"chosen", "rejected"}
    assert main(["comparisons", "convert", str(tmp_path / "hh.jsonl"), str(tmp_path / "trl.jsonl"), "--to", "trl"]) == 0
    assert as_triples(read_comparisons(tmp_path / "trl.jsonl")) == as_triples(comparisons())
    capsys.readouterr()
    assert main(["comparisons", "convert", str(tmp_path / "c.jsonl"), str(tmp_path / "x"), "--to", "csv"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown comparisons format 'csv'" in err
