"""Time per stage of the demo pipeline, and what orchestration costs.

Runs the demo profile twice on fresh copies of the project:
1. plain: each stage function of components/stages.py called in this process, one after another
   (each still records its MLflow run: that is part of the work, not orchestration);
2. flow: the Prefect pipeline flow (ephemeral API), which runs each stage as a task through
   `dvc repro --single-item <stage>` in a new process, tagged with the flow run id.
It prints both per stage and the difference: interpreter start-up, imports, DVC's hashing and
lock files, and Prefect's task bookkeeping. A third run of the flow on unchanged inputs shows the
cost of asking DVC and finding nothing to do.

    .venv/bin/python bench/pipeline.py [--profile demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def copy_project(dest: Path) -> Path:
    """A fresh clone of the working tree's tracked files (plus uncommitted edits)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for rel in files.stdout.decode().split("\0"):
        if rel and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@invalid"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True, env=env, capture_output=True)
    return dest


def plain(project: Path, profile: str) -> dict[str, float]:
    from components.config import load_config
    from components.stages import STAGES

    cwd = os.getcwd()
    os.chdir(project)
    try:
        cfg = load_config("params.yaml", profile)
        times = {}
        for name, fn in STAGES.items():
            t0 = time.perf_counter()
            fn(cfg)
            times[name] = time.perf_counter() - t0
        return times
    finally:
        os.chdir(cwd)


def flow(project: Path, profile: str) -> tuple[dict[str, float], float, float]:
    """Per-stage wall time inside the flow, the flow's total, and the API start-up."""
    from prefect import task

    import flows.pipeline as fp

    times: dict[str, float] = {}
    original = fp.reproduce.fn

    @task(task_run_name="{stage}")
    def timed(stage: str, root: str, profile: str, single_item: bool = True) -> dict:
        t0 = time.perf_counter()
        out = original(stage, root, profile, single_item)
        times[stage] = time.perf_counter() - t0
        return out

    fp.reproduce = timed
    t0 = time.perf_counter()
    fp.pipeline(profile=profile, root=str(project))
    total = time.perf_counter() - t0
    fp.reproduce = original  # type: ignore[assignment]
    return times, total, total - sum(times.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    args = parser.parse_args()
    from components.offline import QUIET_ENV

    for key, value in {**QUIET_ENV, "SYNTHMED_PROGRESS": "0"}.items():
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory(prefix="synthmed-bench-") as tmp:
        os.environ["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        os.environ["DVC_SITE_CACHE_DIR"] = str(Path(tmp) / "dvc-site")
        os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
        a = copy_project(Path(tmp) / "plain")
        b = copy_project(Path(tmp) / "flow")
        t_plain = plain(a, args.profile)
        t_flow, total, outside = flow(b, args.profile)
        t0 = time.perf_counter()
        import flows.pipeline as fp

        fp.pipeline(profile=args.profile, root=str(b))
        noop = time.perf_counter() - t0

    print(f"demo pipeline, profile '{args.profile}', {os.cpu_count()} cores")
    print(f"{'stage':10s} {'plain s':>9s} {'flow s':>9s} {'overhead s':>11s}")
    for stage, seconds in t_plain.items():
        f = t_flow.get(stage, float("nan"))
        print(f"{stage:10s} {seconds:9.1f} {f:9.1f} {f - seconds:11.1f}")
    sp, sf = sum(t_plain.values()), sum(t_flow.values())
    print(f"{'total':10s} {sp:9.1f} {sf:9.1f} {sf - sp:11.1f}")
    print(f"flow wall time {total:.1f} s, of which outside the stage tasks (API start-up, flow "
          f"bookkeeping) {outside:.1f} s")
    print(f"orchestration overhead: {(total - sp):.1f} s ({(total - sp) / sp:.0%} of plain)")
    print(f"re-run on unchanged inputs (DVC skips every stage): {noop:.1f} s")


if __name__ == "__main__":
    main()
