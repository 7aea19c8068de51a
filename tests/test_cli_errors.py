"""Bad input at the command line: one line on stderr, a non-zero exit, never a traceback."""

import subprocess
import sys

import pytest


def chatforge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "chatforge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(result, code, *words):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for w in words:
        assert w in err, err


def test_missing_model_directory(tmp_path):
    assert_one_line_error(chatforge("eval", tmp_path / "nope"), 1, "not found")
    assert_one_line_error(chatforge("chat", tmp_path / "nope", "-m", "hi"), 1, "not found")


def test_corrupt_model_directory(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    assert_one_line_error(chatforge("chat", broken, "-m", "hi"), 1, "could not load")
    # a real config and tokenizer, but the weights file is truncated
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "truncated")
    weights = tmp_path / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert_one_line_error(chatforge("chat", tmp_path / "truncated", "-m", "hi"), 1, "could not load model")


def test_directory_that_is_not_a_model(tmp_path):
    assert_one_line_error(chatforge("eval", tmp_path), 1, "not a model directory")


def test_unknown_presets(tmp_path):
    assert_one_line_error(chatforge("demo", "--preset", "huge", "--run-dir", tmp_path), 1, "unknown preset", "tiny")
    assert_one_line_error(chatforge("world", "build", "--out", tmp_path, "--preset", "huge"), 1, "unknown")
    (tmp_path / "c.txt").write_text("hello<|endoftext|>\n")
    assert_one_line_error(chatforge("pretrain", "--corpus", tmp_path / "c.txt", "--out", tmp_path / "o",
                                    "--preset", "gigantic"), 1, "unknown model preset")


@pytest.mark.parametrize("content,words", [
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{oops\n',
     ["line 2", "not valid JSON"]),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', ["line 1", "no assistant turn"]),
    ('{"messages": [{"role": "wizard", "content": "hi"}]}\n', ["line 1", "role"]),
    ('{"messages": [{"role": "user", "content": 3}]}\n', ["line 1", "content must be a string"]),
    ('{"text": "hello"}\n', ["line 1", "expected 'messages'"]),
    ('', ["no conversations"]),
])
def test_malformed_data_file(tmp_path, tiny_model_dir, content, words):
    data = tmp_path / "data.jsonl"
    data.write_text(content)
    assert_one_line_error(chatforge("sft", tiny_model_dir, "--data", data, "--out", tmp_path / "o"), 1, *words)


def test_invalid_utf8_and_missing_data(tmp_path, tiny_model_dir):
    data = tmp_path / "data.jsonl"
    data.write_bytes(b'{"messages": "\xff\xfe"}\n')
    assert_one_line_error(chatforge("sft", tiny_model_dir, "--data", data, "--out", tmp_path / "o"), 1, "UTF-8")
    assert_one_line_error(chatforge("sft", tiny_model_dir, "--data", tmp_path / "none.jsonl", "--out", tmp_path),
                          1, "not found")
    good = tmp_path / "good.jsonl"
    good.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    assert_one_line_error(chatforge("sft", tiny_model_dir, "--data", good, "--drills", data, "--out", tmp_path / "o"),
                          1, "UTF-8")


def test_bad_flags_are_usage_errors(tmp_path):
    assert_one_line_error(chatforge("demo", "--bogus"), 2, "--bogus")
    assert_one_line_error(chatforge("eval"), 2, "Missing argument")
    assert_one_line_error(chatforge("chat", tmp_path, "--temperature", "hot"), 2, "temperature")
    assert_one_line_error(chatforge("frobnicate"), 2, "frobnicate")


def test_world_sample_rejects_unknown_family():
    assert_one_line_error(chatforge("world", "sample", "--family", "poetry", "--preset", "tiny"), 1, "unknown family")


def test_help_works():
    r = chatforge("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "eval" in r.stdout


def test_rlhf_commands_reject_bad_inputs(tmp_path, tiny_model_dir):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "hi", "chosen": "a"}\n')
    bad = tmp_path / "bad.jsonl"
    assert_one_line_error(chatforge("reward", tiny_model_dir, "--data", bad, "--out", tmp_path / "r"), 1,
                          "bad.jsonl:1", "rejected")
    assert_one_line_error(chatforge("dpo", tiny_model_dir, "--data", tmp_path / "none.jsonl", "--out", tmp_path / "d"),
                          1, "no such comparisons file")
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "hi", "chosen": "hello", "rejected": "go away"}\n')
    assert_one_line_error(chatforge("dpo", tiny_model_dir, "--data", good, "--out", tmp_path / "d",
                                    "--lora-rank", "-1"), 1, "lora_rank")
    assert_one_line_error(chatforge("compare", tmp_path / "nope", "--out", tmp_path / "c"), 1, "not found")
    assert_one_line_error(chatforge("compare", tiny_model_dir, "--out", tmp_path / "c", "-k", "1"), 1, "at least 2")
    assert_one_line_error(chatforge("compare", tiny_model_dir, "--out", tmp_path / "c", "--second-replies", "1"), 1,
                          "needs --second-model")
    assert_one_line_error(chatforge("compare", tiny_model_dir, "--out", tmp_path / "c", "--second-model",
                                    tmp_path / "nope", "--second-replies", "1"), 1, "not found")
    # the SFT model given where the reward model belongs
    (tmp_path / "p.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert_one_line_error(chatforge("ppo", tiny_model_dir, "--reward-model", tiny_model_dir, "--prompts",
                                    tmp_path / "p.jsonl", "--out", tmp_path / "p"), 1, "not a sequence-classification")
    assert_one_line_error(chatforge("ppo", tiny_model_dir, "--reward-model", tiny_model_dir, "--prompts",
                                    tmp_path / "p.jsonl", "--out", tmp_path / "p", "--likelihood-gate",
                                    tmp_path / "nope.safetensors"), 1, "likelihood gate")
    assert_one_line_error(chatforge("winrate", tmp_path / "a.jsonl", tmp_path / "b.jsonl"), 1, "no eval samples")
    assert_one_line_error(chatforge("redteam", tiny_model_dir, "--batch-size", "0", "--out", tmp_path / "rt"), 1,
                          "--batch-size")


def test_product_commands_reject_bad_inputs(tmp_path, tiny_model_dir):
    db = tmp_path / "store"
    assert_one_line_error(chatforge("serve", tmp_path / "nope"), 1, "unknown model")
    assert_one_line_error(chatforge("serve", tiny_model_dir, "--compare-rate", "2"), 1, "compare-rate")
    assert_one_line_error(chatforge("users", "create", "ann", "--role", "god", "--db", db), 1, "unknown role")
    ok = chatforge("users", "create", "ann", "--role", "admin", "--password", "pw", "--db", db)
    assert ok.returncode == 0 and "created admin 'ann'" in ok.stdout
    assert_one_line_error(chatforge("users", "create", "ann", "--password", "pw", "--db", db), 1, "taken")
    assert_one_line_error(chatforge("keys", "revoke", "999", "--db", db), 1, "999")
    assert_one_line_error(chatforge("keys", "create", "ci", "--user", "nobody", "--db", db), 1, "no user")
    key = chatforge("keys", "create", "ci", "--db", db)
    assert key.returncode == 0 and key.stdout.strip().startswith("cf-")
    assert key.stdout.strip() not in chatforge("keys", "list", "--db", db).stdout  # the secret is shown once only
    assert_one_line_error(chatforge("export", "--out", tmp_path / "x", "--since", "last tuesday", "--db", db), 1,
                          "since")
    assert_one_line_error(chatforge("export", "--out", tmp_path / "x", "--db", "postgresql://nobody@127.0.0.1:1/x"),
                          1)
    assert_one_line_error(chatforge("moderate", "hi", "--model", tmp_path / "nope"), 1, "not found")
