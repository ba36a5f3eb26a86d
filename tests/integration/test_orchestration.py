"""The pipeline for real: DVC staleness, Prefect deployments on a server, MLflow over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.servers import BIN, spawn, stop

pytestmark = [pytest.mark.slow]

STAGES = ["ingest", "validate", "train", "generate", "evaluate", "promote"]


def http_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def dvc(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    env = {**(env or os.environ), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_dvc_repro_runs_every_stage_then_nothing(tiny_project: Path) -> None:
    out = dvc(tiny_project, "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}@demo'" in out
    build = tiny_project / "build" / "demo"
    dataset = pd.read_csv(build / "validate" / "lesions" / "dataset.csv")
    assert set(dataset["split"]) == {"train", "val", "test"}
    champion = json.loads((build / "promote" / "champion.json").read_text())
    assert champion["version"] == 1 and champion["promoted"] is True
    set_info = json.loads((build / "generate" / "set.json").read_text())
    assert (tiny_project / "data" / "synthetic" / f"{set_info['name']}.dvc").is_file()
    # The default store: sqlite under mlruns/, artifacts in mlruns/artifacts.
    assert (tiny_project / "mlruns" / "mlflow.db").is_file()
    assert any((tiny_project / "mlruns" / "artifacts").iterdir())

    again = dvc(tiny_project, "repro")
    assert "Running stage" not in again, again
    status = dvc(tiny_project, "status")
    assert "up to date" in status


def test_pipeline_flow_against_mlflow_server(
    tiny_project: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with prefect_test_harness(server_startup_timeout=90):
        first = pipeline(profile="demo", root=str(tiny_project))
        second = pipeline(profile="demo", root=str(tiny_project))
    assert [r["skipped"] for r in first["stages"].values()] == [False] * len(STAGES)
    assert all(r["skipped"] for r in second["stages"].values()), second

    api = f"{mlflow_server}/api/2.0/mlflow"
    alias = http_json(
        f"{api}/registered-models/alias?name=synthmed-lesion-classifier&alias=champion"
    )["model_version"]
    assert alias["version"] == "1"
    tags = {t["key"]: t["value"] for t in alias.get("tags", [])}
    for key in ("git.commit", "data.manifest_sha256", "prefect.flow_run_id"):
        assert tags.get(key, "none") != "none", (key, tags)
    # A set version only on a champion that trained on the set.
    assert ("synthetic.set_version" in tags) == (tags["synthmed.arm"] != "real"), tags

    exp = http_json(f"{api}/experiments/get-by-name?experiment_name=synthmed")["experiment"]
    runs = http_json(f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                            "max_results": 100})["runs"]
    by_stage: dict[str, list[dict]] = {}
    for run in runs:
        rtags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        by_stage.setdefault(rtags.get("synthmed.stage", "?"), []).append(rtags)
    assert {"ingest", "validate", "train", "generate", "evaluate"} <= set(by_stage)
    flow_ids = {t.get("prefect.flow_run_id") for tags_ in by_stage.values() for t in tags_}
    assert len(flow_ids) == 1 and None not in flow_ids
    train_tags = by_stage["train"][0]
    assert train_tags["data.manifest_sha256"]


def test_deployment_runs_on_cpu_pool_worker(tiny_project: Path, prefect_server: dict) -> None:
    env = {**prefect_server, "SYNTHMED_PROJECT_DIR": str(tiny_project),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    prefect = str(BIN / "prefect")

    def cli(*args: str) -> str:
        proc = subprocess.run([prefect, *args], cwd=tiny_project, env=env, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    cli("work-pool", "create", "cpu", "--type", "process")
    cli("work-pool", "create", "gpu", "--type", "process")
    cli("--no-prompt", "deploy", "--all")

    api = prefect_server["PREFECT_API_URL"]
    deployments = http_json(f"{api}/deployments/filter", {})
    by_name = {d["name"]: d for d in deployments}
    assert {"nightly-data", "ingest", "nightly-train", "weekly-pipeline"} <= set(by_name)
    crons = {d["name"]: [s["schedule"].get("cron") for s in d.get("schedules", [])]
             for d in deployments}
    assert crons["nightly-data"] == ["0 2 * * *"]
    assert by_name["nightly-train"]["work_pool_name"] == "gpu"

    run = http_json(f"{api}/deployments/{by_name['ingest']['id']}/create_flow_run", {})
    log = tiny_project.parent / "worker.log"
    worker = spawn([prefect, "worker", "start", "--pool", "cpu"], env, log, cwd=tiny_project)
    try:
        state = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = http_json(f"{api}/flow_runs/{run['id']}")["state"]["type"]
            if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            time.sleep(2)
    finally:
        stop(worker)
    assert state == "COMPLETED", log.read_text()[-4000:]
    manifest = tiny_project / "build" / "demo" / "ingest" / "lesions" / "manifest.csv"
    assert len(pd.read_csv(manifest)) == 20
