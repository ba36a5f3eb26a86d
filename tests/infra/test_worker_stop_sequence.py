"""Stopping synthmed-worker.service while a flow run is running, with a real Prefect server and
worker: the unit's KillSignal goes to the processes its KillMode names, whatever is left after
TimeoutStopSec is SIGKILLed, as systemd does. The worker is started like systemd starts it (by a
process that does not ignore SIGINT: a shell's background job would).

Measured with Prefect 3.8.8: the worker exits within a second or two of its first SIGINT and takes
its flow-run process with it; the flow run stays RUNNING on the server, which is what the zombie
automation of infra/prefect_automations.py is for (checked here against the real server)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.infra.helpers import FINAL, deployment, http_json, prefect, wait_state
from tests.infra.readers import INFRA, SYSTEMD_DIR, load_module, read_unit
from tests.infra.test_prefect_yaml import PREFECT_YAML
from tests.integration.servers import BIN, spawn

pytestmark = [pytest.mark.slow, pytest.mark.server]

SLEEPY_FLOW = """
import time
from prefect import flow

@flow(name="sleepy")
def sleepy(seconds: int = 600) -> None:
    for _ in range(seconds):
        time.sleep(1)
"""


def systemd_stop(main: psutil.Process, kill_signal: str, kill_mode: str, timeout: float) -> dict:
    """systemd's stop of a unit whose main process is `main` (KillMode control-group or mixed)."""
    unit = [main, *main.children(recursive=True)]
    started = time.monotonic()
    for process in unit if kill_mode == "control-group" else [main]:
        process.send_signal(getattr(signal, kill_signal))
    _, alive = psutil.wait_procs(unit, timeout=timeout)
    seconds = time.monotonic() - started
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=10)
    return {"processes": len(unit), "seconds": seconds, "sigkilled": [p.pid for p in alive]}


def test_stopping_the_worker_unit_ends_worker_and_flow_run_without_sigkill(
    tmp_path: Path, prefect_server: dict[str, str]
) -> None:
    service = read_unit(SYSTEMD_DIR / "synthmed-worker.service")["Service"]
    project = tmp_path / "checkout"
    project.mkdir()
    (project / "sleepy.py").write_text(SLEEPY_FLOW)
    pull = PREFECT_YAML.read_text().split("\ndeployments:")[0]  # the project's own pull step
    (project / "prefect.yaml").write_text(
        pull + "\ndeployments:\n  - name: sleepy\n    entrypoint: sleepy.py:sleepy\n"
        "    work_pool: {name: gpu}\n"
    )
    env = {**prefect_server, "SYNTHMED_PROJECT_DIR": str(project)}
    api = env["PREFECT_API_URL"]
    prefect(env, project, "work-pool", "create", "gpu", "--type", "process")
    prefect(env, project, "--no-prompt", "deploy", "--name", "sleepy")
    run = http_json(f"{api}/deployments/{deployment(api, 'sleepy')['id']}/create_flow_run", {})

    args = [a.replace("%H", "test") for a in service["ExecStart"][0].split()[1:]]
    log = tmp_path / "worker.log"
    worker = spawn([str(BIN / "prefect"), *args], env, log, cwd=tmp_path)
    try:
        assert wait_state(api, run["id"], {"RUNNING"} | FINAL, 240, log) == "RUNNING"
        time.sleep(3)  # inside the flow's loop
        main = psutil.Process(worker.pid)
        assert any("prefect.engine" in " ".join(c.cmdline()) for c in main.children(recursive=True))
        stopped = systemd_stop(main, service["KillSignal"][0], service["KillMode"][0],
                               float(service["TimeoutStopSec"][0]))  # fmt: skip
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
    # Worker and flow-run process both gone on the unit's signal alone, well before the timeout.
    assert stopped["processes"] >= 2 and stopped["sigkilled"] == [], (
        stopped,
        log.read_text()[-3000:],
    )
    assert stopped["seconds"] < float(service["TimeoutStopSec"][0]) / 2, stopped


def test_zombie_automation_is_accepted_once_by_the_server(prefect_server: dict[str, str]) -> None:
    # As the server's start-up script runs it: the script, in its own process.
    script = INFRA / "prefect_automations.py"
    automations = load_module(script)
    runs = [
        subprocess.run(
            [str(BIN / "python"), str(script)],
            env=prefect_server,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.strip() == f"created: {automations.ZOMBIE_AUTOMATION}"
    assert runs[1].stdout.strip() == "automations already present"  # the server VM may rerun it
    stored = http_json(f"{prefect_server['PREFECT_API_URL']}/automations/filter", {})
    (zombie,) = [a for a in stored if a["name"] == automations.ZOMBIE_AUTOMATION]
    assert zombie["enabled"] is True
    assert zombie["trigger"]["posture"] == "Proactive"
    assert zombie["actions"][0]["state"] == "CRASHED"
