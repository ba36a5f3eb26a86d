"""Helpers to start real servers and build a tiny copy of the project.

The team configuration (as in production) is an MLflow server and a Prefect server, both backed
by PostgreSQL: these fixtures start exactly that against the machine's PostgreSQL
(127.0.0.1:5432, trust auth), each on a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def make_tiny_project(repo_root: Path, dest: Path) -> Path:
    """A runnable copy of the project with a handful of images and tiny settings.

    The package itself is the installed one (editable); the copy carries what a checkout
    carries for DVC and Prefect: code (as DVC deps and flow entrypoints), params, dvc.yaml,
    prefect.yaml and data.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("components", "flows"):
        shutil.copytree(repo_root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "prefect.yaml"):
        shutil.copy(repo_root / name, dest / name)
    lesions = dest / "data" / "lesions"
    lesions.mkdir(parents=True)
    src = repo_root / "data" / "samples" / "isic-uda1" / "images"
    picked = {"benign": 0, "malignant": 0}
    for meta in sorted(src.glob("*.json")):
        label = yaml.safe_load(meta.read_text())["meta"]["clinical"].get("benign_malignant")
        if label in picked and picked[label] < 10:
            picked[label] += 1
            shutil.copy(meta, lesions / meta.name)
            shutil.copy(meta.with_suffix(".jpg"), lesions / meta.with_suffix(".jpg").name)
    shutil.copytree(repo_root / "data" / "samples" / "polyp-phantoms", dest / "data" / "polyps")
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["profile"] = "demo"
    params["data"]["lesions"]["source"] = "data/lesions"
    params["data"]["polyps"]["source"] = "data/polyps"
    demo = params["profiles"]["demo"]
    demo["data"] = {"lesions": {"sizes": [64], "val_fraction": 0.2, "test_fraction": 0.3},
                    "polyps": {"sizes": [64]}}
    demo["gan"] = {"base_channels": 8, "batch_size": 8, "steps": 4, "checkpoint_every": 2,
                   "sample_every": 2, "log_every": 2}
    demo["generate"] = {"n_images": 16}
    demo["evaluate"] = {"image_size": 64, "epochs": 1, "batch_size": 8}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = lambda *cmd: subprocess.run(cmd, cwd=dest, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    run(str(BIN / "dvc"), "remote", "add", "-d", "synthmed", str(dest.parent / "dvc-remote"))
    (dest / ".gitignore").write_text("build/\nmlruns/\n.prefect/\n")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "tiny project")
    return dest
