"""Rebuild a registered model from its lineage and compare what comes out with what was
registered.

A classifier version carries its lineage as tags (``git.commit``, ``config.digest``,
``data.manifest_sha256``, ``synthetic.set_version`` when it trained on one, ``seed``,
``synthmed.arm``, ``synthmed.profile``); its training run's parent holds the resolved
``config.yaml``. :func:`reproduce`:

1. reads those, and fails in one line when one is missing or does not resolve (a commit the
   repository does not have, a set version ``versions.json`` does not know);
2. checks the commit out in a temporary ``git worktree`` (the code exactly as it was);
3. pulls the synthetic set the stage read with DVC, through this project's remote and cache;
4. re-runs the pipeline's own stages there, with the commit's code and the recorded config
   (``ingest``, ``validate``, then ``evaluate`` for the model's arm alone), logging to a
   throwaway MLflow store so the registry is untouched;
5. checks that the validated table is the one the model was trained on (its sha256), and
   compares the new test metrics with the registered ones.

Tolerance: CPU training is deterministic here (seeded, fixed kernels), so a model trained on the
CPU must come back bit-identical (tolerance 0). On a GPU, cuDNN's kernels are not, and the
registered figure is only expected within :data:`GPU_TOLERANCE` (the spread of the demo's test
metrics over seeds), as the report says.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.errors import DataError, SynthmedError

GPU_TOLERANCE = 0.05
"""Largest |registered - reproduced| accepted for a model trained on a GPU: about the sample
std over seeds of the demo's test ROC AUC and F1."""
REQUIRED = ("git.commit", "data.manifest_sha256", "synthmed.arm", "synthmed.profile")


@dataclass(frozen=True)
class Lineage:
    """What a registered version says made it."""

    model: str
    commit: str
    dirty: bool
    profile: str
    arm: str
    seed: int | None
    manifest_sha256: str
    set_version: str | None
    device: str
    run_id: str


@dataclass(frozen=True)
class Comparison:
    """One metric, registered vs reproduced."""

    metric: str
    registered: float
    reproduced: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.registered - self.reproduced) <= self.tolerance

    @property
    def identical(self) -> bool:
        return self.registered == self.reproduced


@dataclass(frozen=True)
class Reproduction:
    """The outcome of :func:`reproduce`."""

    lineage: Lineage
    comparisons: list[Comparison]
    tolerance: float
    tolerance_note: str

    @property
    def ok(self) -> bool:
        return bool(self.comparisons) and all(c.ok for c in self.comparisons)


def lineage_of(model: str) -> tuple[Lineage, dict[str, float], dict[str, Any]]:
    """The lineage, the registered test metrics and the recorded config of ``model``.

    Raises:
        SynthmedError: a lineage tag is missing, or the version's run or config is gone.
    """
    from mlflow.tracking import MlflowClient

    from components.registry import METRIC_TAG
    from components.zoo import resolve

    name, version = resolve(model)
    ref = f"models:/{name}/{version}"
    client = MlflowClient()
    mv = client.get_model_version(name, version)
    tags = dict(mv.tags)
    if tags.get("synthmed.stage", "evaluate") != "evaluate" or "generator.kind" in tags:
        raise SynthmedError(f"{ref}: only classifiers of the evaluate stage can be reproduced yet")
    missing = [k for k in REQUIRED if not tags.get(k)]
    if missing:
        raise SynthmedError(f"{ref}: lineage tag {', '.join(missing)} missing: cannot rebuild it")
    metrics = {k[len(METRIC_TAG) :]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}
    if not metrics:
        raise SynthmedError(f"{ref}: no registered metrics (metric.* tags) to compare with")
    commit = tags["git.commit"]
    config, parent_tags = _recorded_config(client, mv.run_id, ref)
    lineage = Lineage(
        model=ref,
        commit=commit.removesuffix("+dirty"),
        dirty=commit.endswith("+dirty"),
        profile=tags["synthmed.profile"],
        arm=tags["synthmed.arm"],
        seed=int(tags["seed"]) if tags.get("seed") else None,
        manifest_sha256=tags["data.manifest_sha256"],
        # The stage reads the run's set even for the real arm: the parent run names it.
        set_version=tags.get("synthetic.set_version") or parent_tags.get("synthetic.set_version"),
        device=tags.get("synthmed.device") or parent_tags.get("synthmed.device") or "unknown",
        run_id=mv.run_id,
    )
    if tags.get("config.digest"):
        from components.config import resolve as resolve_config
        from components.config import config_digest
        from components.stages import EVALUATE_SECTIONS

        found = config_digest(resolve_config(dict(config)), *EVALUATE_SECTIONS)
        if found != tags["config.digest"]:
            raise SynthmedError(
                f"{ref}: the recorded config.yaml has digest {found}, the version says "
                f"{tags['config.digest']}: the lineage does not hold together"
            )
    return lineage, metrics, config


def _recorded_config(client: Any, run_id: str, ref: str) -> tuple[dict[str, Any], dict[str, str]]:
    """config.yaml of the run that trained the model, or of its nearest ancestor that has one
    (arms are child runs; the stage's run records the config); plus that run's tags."""
    import mlflow
    from mlflow.exceptions import MlflowException

    current: str | None = run_id
    while current:
        run = client.get_run(current)
        try:
            text = mlflow.artifacts.load_text(f"runs:/{current}/config.yaml")
        except (MlflowException, OSError):
            current = run.data.tags.get("mlflow.parentRunId")
            continue
        return yaml.safe_load(text), dict(run.data.tags)
    raise SynthmedError(f"{ref}: its training run {run_id} has no config.yaml (nor its parents)")


def reproduce(model: str, root: Path | str = ".", keep: Path | None = None) -> Reproduction:
    """Rebuild ``model`` (``models:/NAME/VERSION``, ``NAME@alias``...) from its lineage in a
    temporary worktree of the git repository at ``root``; see the module docstring.

    ``keep``: a folder to leave the worktree's build outputs in (for a look afterwards).

    Raises:
        SynthmedError: missing or unreachable lineage, or a stage failing in the worktree.
    """
    from components.config import load_config

    root = Path(root).resolve()
    lineage, registered, config = lineage_of(model)
    _check_commit(root, lineage)
    cfg = load_config(root / "params.yaml") if (root / "params.yaml").is_file() else None
    record = _set_record(root, lineage, cfg)
    # Only the model's own arm: each arm re-seeds (seed_everything) before training, so running
    # it alone gives it exactly the tensors it got beside the others.
    config = {**config, "evaluate": {**config["evaluate"], "arms": [lineage.arm]}}
    with _worktree(root, lineage.commit) as tree:
        params = tree / "reproduce-params.yaml"
        params.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        env = _stage_env(tree)
        for stage in ("ingest", "validate"):
            _run_stage(tree, stage, lineage, env)
        _check_data(tree, config, lineage)
        if record is not None:
            _pull_set(root, tree, record, config)
        _run_stage(tree, "evaluate", lineage, env)
        out = Path(config.get("work_dir", "build"))
        out = (tree / out if not out.is_absolute() else out) / lineage.profile / "evaluate"
        new = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["arms"][lineage.arm]["metrics"]
        if keep is not None:
            shutil.copytree(tree / config.get("work_dir", "build"), keep, dirs_exist_ok=True)
    tolerance, note = _tolerance(lineage)
    comparisons = [
        Comparison(m, registered[m], float(new[m]), tolerance) for m in sorted(registered) if m in new
    ]
    return Reproduction(lineage, comparisons, tolerance, note)


def _tolerance(lineage: Lineage) -> tuple[float, str]:
    from components.runtime import make_runtime

    here = make_runtime().device.type
    if lineage.device == "cpu" and here == "cpu":
        return 0.0, "trained and rebuilt on CPU: deterministic, bit-identical expected"
    return GPU_TOLERANCE, (
        f"trained on {lineage.device}, rebuilt on {here}: GPU kernels are not deterministic, "
        f"within {GPU_TOLERANCE:g} (about the spread over seeds) expected"
    )


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def _check_commit(root: Path, lineage: Lineage) -> None:
    if _git(root, "rev-parse", "--show-toplevel").returncode != 0:
        raise SynthmedError(f"{root}: not a git repository: the lineage's commit cannot be checked out")
    if _git(root, "cat-file", "-e", f"{lineage.commit}^{{commit}}").returncode != 0:
        raise SynthmedError(
            f"{lineage.model}: git.commit {lineage.commit} does not exist in {root} "
            "(fetch it, or the lineage is wrong)"
        )


def _set_record(root: Path, lineage: Lineage, cfg: Any) -> dict[str, Any] | None:
    """The versions.json record of the set the stage read; None when it read none."""
    from components.versioning import list_versions

    if not lineage.set_version:
        return None
    if cfg is None:
        raise SynthmedError(f"{root / 'params.yaml'}: missing: needed to find the set versions")
    versions = {v["name"]: v for v in list_versions(root, cfg.versioning)}
    if lineage.set_version not in versions:
        raise SynthmedError(
            f"{lineage.model}: synthetic set {lineage.set_version} is not in "
            f"{root / cfg.versioning.sets_dir / 'versions.json'}: cannot pull it"
        )
    return versions[lineage.set_version]


@contextlib.contextmanager
def _worktree(root: Path, commit: str) -> Iterator[Path]:
    """A detached git worktree of ``commit``, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="synthmed-reproduce-"))
    tree = tmp / "src"
    done = _git(root, "worktree", "add", "--detach", str(tree), commit)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SynthmedError(f"git worktree add of {commit} failed: {done.stderr.strip().splitlines()[-1:]}")
    try:
        yield tree
    finally:
        _git(root, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
        _git(root, "worktree", "prune")


def _stage_env(tree: Path) -> dict[str, str]:
    """The stages' environment: the commit's code first on the path, and a throwaway MLflow
    store, so rebuilding never adds runs or versions to the real registry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "PREFECT__FLOW"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tree / 'reproduce-mlflow.db'}"
    env.pop("SYNTHMED_FLOW_RUN_ID", None)
    return env


def _run_stage(tree: Path, stage: str, lineage: Lineage, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "flows.cli", stage, "--params", "reproduce-params.yaml",
           "--profile", lineage.profile]  # fmt: skip
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise SynthmedError(
            f"{lineage.model}: stage '{stage}' failed at commit {lineage.commit[:12]}: {tail[0]}"
        )


def _check_data(tree: Path, config: dict[str, Any], lineage: Lineage) -> None:
    from components.io import sha256_file

    work = Path(config.get("work_dir", "build"))
    table = (tree / work if not work.is_absolute() else work) / lineage.profile / "validate" / "lesions" / "dataset.csv"
    found = sha256_file(table)
    if found != lineage.manifest_sha256:
        raise DataError(
            f"{lineage.model}: the data at commit {lineage.commit[:12]} validates to sha256 "
            f"{found[:12]}, the model was trained on {lineage.manifest_sha256[:12]}: its source "
            "data is not what it was (data.lesions.source changed outside git/DVC?)"
        )


def _pull_set(root: Path, tree: Path, record: dict[str, Any], config: dict[str, Any]) -> None:
    """The set into the worktree with DVC: its .dvc file from this project, this project's
    remote and cache (a worktree starts with an empty cache); set.json for the evaluate stage."""
    import dvc.repo

    from components.config import VersioningConfig

    vcfg = VersioningConfig.model_validate(config.get("versioning", {}))
    dvc_file = tree / record["dvc_file"]
    dvc_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / record["dvc_file"], dvc_file)
    with dvc.repo.Repo(os.fspath(root)) as repo:
        remote = dict(repo.config["remote"].get(vcfg.remote_name, {}))
        cache = repo.cache.local.path
    try:
        with dvc.repo.Repo(os.fspath(tree)) as repo:
            with repo.config.edit("local") as conf:
                conf["cache"]["dir"] = cache
                if remote:
                    conf["remote"][vcfg.remote_name] = remote
                    conf["core"]["remote"] = vcfg.remote_name
            repo.pull(targets=[os.fspath(dvc_file)], remote=vcfg.remote_name if remote else None)
    except Exception as exc:  # noqa: BLE001  (DVC, s3fs and botocore raise unrelated types)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SynthmedError(f"dvc pull of set {record['name']} into the worktree failed: {reason}") from exc
    work = Path(config.get("work_dir", "build"))
    out = (tree / work if not work.is_absolute() else work) / str(config["profile"]) / "generate"
    out.mkdir(parents=True, exist_ok=True)
    (out / "set.json").write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
