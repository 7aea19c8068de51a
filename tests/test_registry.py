"""The model registry: versions, lineage, the served model, resolving refs, the CLI and the pipeline hook."""

import json
import multiprocessing

import pytest

from chatforge.cli import main
from chatforge.errors import ChatforgeError
from chatforge.models.registry import Registry
from chatforge.pipeline.run import RunDir, Stage


def model_dir(tmp_path, name):
    d = tmp_path / name / "model"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return d


@pytest.fixture()
def chain(tmp_path):
    """base:1 ← sft:1 ← ppo:1, as a pipeline would register them."""
    reg = Registry()
    base, sft, ppo = (model_dir(tmp_path, n) for n in ("pretrain", "sft", "ppo"))
    reg.register("base", base, "pretrain", data=[str(tmp_path / "world")], metrics={"final_loss": 2.5})
    reg.register("sft", sft, "sft", parent=str(base), config={"epochs": 3})
    reg.register("ppo", ppo, "ppo", parent="sft", metrics={"oracle_score": 0.9})
    return reg, tmp_path


def test_register_increments_versions_and_updates_the_same_path(tmp_path):
    reg = Registry()
    a, b = model_dir(tmp_path, "a"), model_dir(tmp_path, "b")
    assert reg.register("sft", a, "sft").ref == "sft:1"
    assert reg.register("sft", b, "sft").ref == "sft:2"
    assert reg.register("base", a, "pretrain").ref == "base:1"  # versions count per name
    again = reg.register("sft", str(a) + "/", "sft", metrics={"loss": 1.0})  # the same folder: the same model
    assert again.ref == "sft:1" and again.metrics == {"loss": 1.0}
    assert [v.ref for v in reg.list()] == ["sft:1", "sft:2", "base:1"]
    assert reg.get("sft").ref == "sft:2" and reg.get("sft:1").path == str(a)
    assert reg.path.parent.name.startswith("chatforge_home")  # tests never touch ~/.chatforge


def test_lineage_metrics_and_parent_refs(chain):
    reg, tmp_path = chain
    assert reg.get("sft").parent == "base:1"  # a registered parent path is stored as its ref
    assert reg.get("ppo").parent == "sft:1"  # so is a parent name
    assert reg.lineage("ppo") == ["ppo:1", "sft:1", "base:1"]
    reg.register("chat", model_dir(tmp_path, "chat"), "sft", parent="org/hub-model")
    assert reg.lineage("chat") == ["chat:1", "org/hub-model"]  # an unregistered root is kept as given
    assert reg.add_metrics("sft:1", {"oracle_score": 0.8}).metrics == {"oracle_score": 0.8}
    assert reg.get("base").data == [str(tmp_path / "world")] and reg.get("sft").config == {"epochs": 3}


def test_promote_serves_exactly_one(chain):
    reg, _ = chain
    with pytest.raises(ChatforgeError, match="no model is promoted"):
        reg.get("served")
    reg.promote("sft")
    assert reg.promote("ppo:1").served
    assert [v.ref for v in reg.list() if v.served] == ["ppo:1"] and reg.get("served").ref == "ppo:1"


def test_resolve(chain):
    reg, tmp_path = chain
    assert reg.resolve(str(tmp_path / "sft" / "model")) == str(tmp_path / "sft" / "model")  # a path is a path
    assert reg.resolve("sft") == reg.resolve("sft:1") == str(tmp_path / "sft" / "model")
    reg.promote("base")
    assert reg.resolve("served") == str(tmp_path / "pretrain" / "model")
    with pytest.raises(ChatforgeError, match=r"unknown model 'stf'.*did you mean: sft"):
        reg.resolve("stf")
    with pytest.raises(ChatforgeError, match="unknown model 'sft:7'"):
        reg.resolve("sft:7")
    with pytest.raises(ChatforgeError, match="registry is empty"):
        Registry(tmp_path / "empty.json").resolve("sft")


def test_two_writers_lose_nothing(tmp_path):
    one, two = Registry(), Registry()
    for i in range(5):
        one.register("sft", model_dir(tmp_path, f"one{i}"), "sft")
        two.register("sft", model_dir(tmp_path, f"two{i}"), "sft")
        two.promote(f"sft:{2 * i + 1}")
    assert [v.version for v in one.list()] == list(range(1, 11)) and one.get("served").ref == "sft:9"
    assert not list(one.path.parent.glob(".registry-*"))  # no temporary files left behind


def register_many(tag, root, n):
    reg = Registry()
    for i in range(n):
        reg.register("sft", model_dir(root, f"{tag}{i}"), "sft")


def test_two_processes_at_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=register_many, args=(tag, tmp_path, 15)) for tag in ("x", "y")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(v.version for v in Registry().list()) == list(range(1, 31))


def test_corrupt_registry_is_one_clear_error(tmp_path):
    path = tmp_path / "registry.json"
    path.write_text("{ nope")
    with pytest.raises(ChatforgeError, match="not valid JSON"):
        Registry(path).list()


def test_cli_list_show_promote(chain, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models", "promote", "sft"]) == 0
    assert "serving sft:1" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("*" in line and "sft:1" in line for line in lines)
    assert any("ppo:1" in line and "oracle_score 0.9" in line for line in lines)
    assert main(["models", "show", "ppo"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"] == ["ppo:1", "sft:1", "base:1"] and shown["metrics"] == {"oracle_score": 0.9}


def test_cli_registry_option_and_bad_ref(tmp_path, capsys):
    other = tmp_path / "other.json"
    Registry(other).register("dpo", model_dir(tmp_path, "dpo"), "dpo")
    assert main(["models", "show", "dpo", "--registry", str(other)]) == 0
    capsys.readouterr()
    assert main(["models", "show", "dpo"]) == 1  # not in the default registry
    assert "registry is empty" in capsys.readouterr().err
    assert main(["models", "promote", "dop", "--registry", str(other)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: unknown model 'dop'") and "dpo" in err


def fake_model_stage(name, needs, kind="model", metrics=None):
    def run(ctx):
        if kind == "model":
            (ctx.dir / "model").mkdir()
        return metrics or {"final_loss": 1.0}

    return Stage(name, run, {"lr": 0.1}, needs=needs, kind=kind)


def test_pipeline_registers_models_and_their_evals(tmp_path, capsys):
    stages = [fake_model_stage("world", [], kind="data"), fake_model_stage("pretrain", ["world"]),
              fake_model_stage("sft", ["world", "pretrain"]),
              fake_model_stage("eval-sft", ["world", "sft"], kind="report", metrics={"oracle_score": 0.7})]
    RunDir(tmp_path / "run").run(stages)
    reg = Registry()
    assert [v.ref for v in reg.list()] == ["base:1", "sft:1"]
    sft = reg.get("sft")
    assert sft.parent == "base:1" and sft.data == [str(tmp_path / "run" / "world")]
    assert sft.config == {"lr": 0.1} and sft.metrics == {"final_loss": 1.0, "oracle_score": 0.7}
    assert sft.run == str(tmp_path / "run") and sft.kind == "sft"
    RunDir(tmp_path / "run2").run(stages)  # another run: new versions
    assert reg.lineage("sft") == ["sft:2", "base:2"]


def test_ppo_descends_from_the_policy_not_the_reward_model(tmp_path):
    stages = [fake_model_stage("sft", []), fake_model_stage("reward", ["sft"]),
              fake_model_stage("ppo", ["reward", "sft"])]
    RunDir(tmp_path).run(stages)
    reg = Registry()
    assert reg.lineage("ppo") == ["ppo:1", "sft:1"] and reg.get("ppo").data == [str(tmp_path / "reward")]
    assert reg.lineage("reward") == ["reward:1", "sft:1"]


def test_registry_problems_never_fail_a_run(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "registry.json").write_text("garbage")
    monkeypatch.setenv("CHATFORGE_HOME", str(home))
    results = RunDir(tmp_path / "run").run([fake_model_stage("sft", [])])
    assert results["sft"] == {"final_loss": 1.0}
    assert "could not update the model registry" in capsys.readouterr().err
