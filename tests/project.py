"""A runnable copy of the project for tests: git + DVC, a handful of images, tiny settings.

The package itself is the installed one (editable); the copy carries what a checkout carries
for DVC and Prefect: code (as DVC deps and flow entrypoints), params.yaml, dvc.yaml,
prefect.yaml and data. Tests change its settings with a profile overlay, so DVC tracks exactly
what the run uses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from components.config import deep_merge

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY_DEMO = {
    "data": {
        "lesions": {"sizes": [64], "val_fraction": 0.2, "test_fraction": 0.3},
        "polyps": {"sizes": [64]},
    },
    "gan": {"base_channels": 8, "batch_size": 8, "steps": 4, "checkpoint_every": 2,
            "sample_every": 2, "log_every": 2},
    "generate": {"n_images": 16},
    "evaluate": {"image_size": 64, "epochs": 1, "batch_size": 8},
}  # fmt: skip
"""The demo profile of a tiny project: seconds per stage."""


def make_project(
    dest: Path,
    profile: dict[str, Any] | None = None,
    per_class: int = 10,
    name: str = "demo",
    polyps: int | None = None,
) -> Path:
    """A project at ``dest`` whose ``name`` profile is the demo profile with :data:`TINY_DEMO`
    and ``profile`` merged on top; ``per_class`` ISIC images of each class, the first
    ``polyps`` polyp phantoms (all when None)."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("components", "flows"):
        shutil.copytree(REPO_ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("dvc.yaml", "prefect.yaml"):
        shutil.copy(REPO_ROOT / file, dest / file)
    lesions = dest / "data" / "lesions"
    lesions.mkdir(parents=True)
    src = REPO_ROOT / "data" / "samples" / "isic-uda1" / "images"
    picked = {"benign": 0, "malignant": 0}
    for meta in sorted(src.glob("*.json")):
        label = yaml.safe_load(meta.read_text())["meta"]["clinical"].get("benign_malignant")
        if label in picked and picked[label] < per_class:
            picked[label] += 1
            shutil.copy(meta, lesions / meta.name)
            shutil.copy(meta.with_suffix(".jpg"), lesions / meta.with_suffix(".jpg").name)
    for statement in ("LICENSE.txt", "ATTRIBUTION.txt"):  # the licence chain of the copies
        shutil.copy(src.parent / statement, lesions / statement)
    phantoms = REPO_ROOT / "data" / "samples" / "polyp-phantoms"
    for sub in ("images", "masks"):
        (dest / "data" / "polyps" / sub).mkdir(parents=True)
        for path in sorted((phantoms / sub).iterdir())[:polyps]:
            shutil.copy(path, dest / "data" / "polyps" / sub / path.name)
    for statement in ("LICENSE.txt", "ATTRIBUTION.txt"):
        shutil.copy(phantoms / statement, dest / "data" / "polyps" / statement)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["profile"] = name
    params["data"]["lesions"]["source"] = "data/lesions"
    params["data"]["polyps"]["source"] = "data/polyps"
    overlay = deep_merge(deep_merge(params["profiles"]["demo"], TINY_DEMO), profile or {})
    params["profiles"] = {name: overlay}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = lambda *cmd: subprocess.run(cmd, cwd=dest, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    run(str(BIN / "dvc"), "remote", "add", "-d", "synthmed", str(dest.parent / "dvc-remote"))
    (dest / ".gitignore").write_text("build/\nmlruns/\n.prefect/\n")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "tiny project")
    return dest


def make_tiny_project(repo_root: Path, dest: Path) -> Path:
    """The integration tests' project: the tiny demo profile."""
    return make_project(dest)
