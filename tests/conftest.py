"""Shared fixtures: a tiny world, a tokenizer trained on it, and tiny models, all made here (no downloads)."""

import json
import os
import shutil

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def chatforge_home(tmp_path_factory, monkeypatch):
    """Every test gets its own CHATFORGE_HOME, so no test reads or writes the user's model registry."""
    home = tmp_path_factory.mktemp("chatforge_home")
    monkeypatch.setenv("CHATFORGE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    from chatforge.world.build import build_world_dir
    from chatforge.world.config import WorldConfig

    out = tmp_path_factory.mktemp("tiny_world")
    build_world_dir(WorldConfig.preset("tiny"), out)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_world, tmp_path_factory):
    from chatforge.models.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_tokenizer")
    train_tokenizer(tiny_world / "corpus.txt", 1024).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_world, tiny_tokenizer_dir, tmp_path_factory):
    """A randomly initialised tiny Llama with chatforge's tokenizer and world file: a stand-in base model."""
    from transformers import AutoTokenizer

    from chatforge.models.presets import new_model
    from chatforge.world.config import WORLD_FILE

    out = tmp_path_factory.mktemp("tiny_model")
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    new_model("tiny", tok).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    shutil.copy(tiny_world / WORLD_FILE, out / WORLD_FILE)
    return out


@pytest.fixture()
def conversations_file(tmp_path):
    def write(conversations, name="data.jsonl"):
        path = tmp_path / name
        path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations))
        return path

    return write
