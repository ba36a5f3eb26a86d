"""prefect.yaml's deployments do not depend on where they were deployed from.

The pull step is `set_working_directory` to `{{ $SYNTHMED_PROJECT_DIR }}`: Prefect stores the
template as written and resolves it on the worker, whose systemd unit sets the variable to the
checkout of the pinned commit (infra/systemd/synthmed-worker.service, infra/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.infra.helpers import FINAL, deployment, http_json, prefect, wait_state
from tests.infra.readers import REPO_ROOT, SYSTEMD_DIR, read_unit, walk
from tests.integration.servers import BIN, spawn, stop
from tests.project import make_tiny_project

PREFECT_YAML = REPO_ROOT / "prefect.yaml"
DOCUMENTED_PULL = [
    {
        "prefect.deployments.steps.set_working_directory": {
            "directory": "{{ $SYNTHMED_PROJECT_DIR }}"
        }
    }
]


def test_pull_steps_are_the_documented_ones() -> None:
    config = yaml.safe_load(PREFECT_YAML.read_text())
    assert config["pull"] == DOCUMENTED_PULL
    assert config["deployments"], "no deployments?"
    for item in config["deployments"]:
        assert "pull" not in item, f"{item['name']}: its own pull step"
        assert item["work_pool"]["name"] in {"cpu", "gpu"}
    # the variable the pull step reads is the one the GPU worker's unit sets
    unit = read_unit(SYSTEMD_DIR / "synthmed-worker.service")["Service"]
    assert any(value.startswith("SYNTHMED_PROJECT_DIR=") for value in unit["Environment"])
    assert "SYNTHMED_PROJECT_DIR" in (REPO_ROOT / "infra" / "README.md").read_text()


def test_no_path_of_any_machine_in_prefect_yaml() -> None:
    text = PREFECT_YAML.read_text()
    assert str(REPO_ROOT) not in text and str(Path.home()) not in text
    for path, leaf in walk(yaml.safe_load(text)):
        if isinstance(leaf, str):
            assert not leaf.startswith(("/", "~", "C:\\")), (path, leaf)
            assert "/home/" not in leaf and "/Users/" not in leaf and "/work/" not in leaf, leaf


@pytest.mark.slow
@pytest.mark.server
def test_deployment_runs_in_a_checkout_elsewhere(
    repo_root: Path, tmp_path: Path, prefect_server: dict[str, str]
) -> None:
    # Deploy from a laptop's checkout, then let a worker whose checkout is somewhere else (as on
    # a fresh GPU VM) run it, after the laptop's folder is gone.
    laptop = make_tiny_project(repo_root, tmp_path / "laptop" / "synthmed")
    env = {**prefect_server, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SYNTHMED_PROJECT_DIR", None)
    api = env["PREFECT_API_URL"]
    prefect(env, laptop, "work-pool", "create", "cpu", "--type", "process")
    prefect(env, laptop, "--no-prompt", "deploy", "--name", "ingest")

    stored = deployment(api, "ingest")
    assert stored["pull_steps"] == DOCUMENTED_PULL  # the template, not this machine's path
    assert str(laptop) not in json.dumps(stored)

    vm_checkout = tmp_path / "gpu-vm" / "opt" / "synthmed"
    vm_checkout.parent.mkdir(parents=True)
    shutil.move(laptop, vm_checkout)
    run = http_json(f"{api}/deployments/{stored['id']}/create_flow_run", {})
    log = tmp_path / "worker.log"
    worker_env = {**env, "SYNTHMED_PROJECT_DIR": str(vm_checkout)}
    worker = spawn([str(BIN / "prefect"), "worker", "start", "--pool", "cpu"], worker_env, log,
                   cwd=tmp_path)  # fmt: skip
    try:
        state = wait_state(api, run["id"], FINAL, 300, log)
    finally:
        stop(worker)
    assert state == "COMPLETED", log.read_text()[-4000:]
    manifest = vm_checkout / "build" / "demo" / "ingest" / "lesions" / "manifest.csv"
    assert len(pd.read_csv(manifest)) == 20
    assert not (tmp_path / "laptop" / "synthmed").exists()
