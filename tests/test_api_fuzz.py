"""Schemathesis over the server's own OpenAPI spec: generated valid and invalid requests to every operation
(API, web, rater and admin routes) must never get a 5xx. Runs the schemathesis CLI against a real server."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


def test_no_server_errors_over_the_openapi_spec(serve_app_factory, tmp_path):
    app, store = serve_app_factory(default_max_tokens=8)
    store.create_user("fuzz", "pw-fuzz", "admin")
    token = store.create_session(store.get_user_by_name("fuzz")["id"])
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    with LiveServer(app) as live:
        run = subprocess.run(
            [cli, "run", f"{live.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "15",
             "--seed", "1", "--workers", "1", "--request-timeout", "60", "--continue-on-failure",
             "--header", f"Cookie: cf_session={token}",
             "--exclude-path", "/api/auth/logout",  # it would end the fuzzer's own session
             "--phases", "examples,coverage,fuzzing"],
            capture_output=True, text=True, timeout=540, cwd=tmp_path,
            env=dict(os.environ, SCHEMATHESIS_HOOKS="", NO_COLOR="1"))
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    assert "generated" in tail and "Authentication failed" not in tail, tail
    assert "/v1/chat/completions" not in tail.split("Missing test data")[-1], tail  # the model was reached
