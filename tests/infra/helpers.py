"""Small helpers of the slow tests here that drive a real Prefect server and worker."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.integration.servers import BIN

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def http_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def prefect(env: dict[str, str], cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "prefect"), *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def deployment(api: str, name: str) -> dict:
    (found,) = [d for d in http_json(f"{api}/deployments/filter", {}) if d["name"] == name]
    return found


def wait_state(api: str, run_id: str, wanted: set[str], timeout: float, log: Path) -> str:
    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        state = http_json(f"{api}/flow_runs/{run_id}")["state"]["type"]
        if state in wanted:
            return state
        time.sleep(1)
    raise AssertionError(f"flow run still {state} after {timeout}s:\n{log.read_text()[-4000:]}")
