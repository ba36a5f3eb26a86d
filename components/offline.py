"""The switches that keep every tool synthmed drives quiet, local and offline.

One list, applied by the CLI, the flows and the tests (the Makefile exports the same for the
tools it runs directly): telemetry off for Prefect, MLflow and DVC, no hub downloads, and every
state folder (Prefect home, DVC site cache, matplotlib and other caches) inside the project
unless the user chose a place.
"""

from __future__ import annotations

import os
from pathlib import Path

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "HF_HUB_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # no INFO chatter (database creation) around our output
    # No tqdm bars on stderr when a model is downloaded (sample, reproduce): errors stay one line.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
"""Telemetry and download switches, as environment variables."""


def state_dirs(root: Path) -> dict[str, str]:
    """Where Prefect, DVC and caches keep state: inside the project folder ``root``."""
    return {
        "PREFECT_HOME": str(root / ".prefect"),
        "DVC_SITE_CACHE_DIR": str(root / ".dvc-site-cache"),
        "XDG_CACHE_HOME": str(root / ".cache"),
        "MPLCONFIGDIR": str(root / ".cache" / "matplotlib"),
    }


def apply(root: Path | None = None) -> None:
    """Set every switch not already set (a user's own choice wins)."""
    for key, value in {**QUIET_ENV, **state_dirs(Path(root or Path.cwd()))}.items():
        os.environ.setdefault(key, value)
