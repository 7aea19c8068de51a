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


class LiveServer:
    """A real uvicorn server for an app, on a free loopback port, in a background thread."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.app, self.url = app, f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        for _ in range(200):  # bounded: 20 s at most
            if self.server.started:
                return self
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def tiny_moderation(tmp_path_factory):
    """(directory, metrics) of the safety classifier trained on the tiny world (seconds)."""
    from chatforge.moderation.train import ModerationConfig, train_moderation

    out = tmp_path_factory.mktemp("moderation")
    return out, train_moderation(ModerationConfig(output_dir=str(out), world="tiny"), progress=False)


@pytest.fixture(scope="session")
def serve_app_factory(tiny_model_dir, tiny_moderation, tmp_path_factory):
    """make(**config overrides) -> (app, store): the product app on the tiny model with a fresh database."""
    def make(**overrides):
        from chatforge.serve.app import create_app
        from chatforge.serve.config import ServeConfig

        data = tmp_path_factory.mktemp("serve")
        overrides.setdefault("moderation", str(tiny_moderation[0]))
        cfg = ServeConfig(model=str(tiny_model_dir), model_id="tiny-chat", data_dir=str(data), **overrides)
        app = create_app(cfg)
        return app, app.state.store
    return make


@pytest.fixture(scope="session")
def tiny_reward_model(tiny_model_dir, tmp_path_factory):
    """The tiny model's backbone with a fresh scalar head: a stand-in reward model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=1)
    torch.nn.init.normal_(rm.score.weight, std=1.0)
    rm.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(out))
    return out
