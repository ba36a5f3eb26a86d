"""The systemd units the VMs install: `systemd-analyze verify`, how they stop, their environment."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.offline import QUIET_ENV
from tests.infra.readers import INFRA, SYSTEMD_DIR, load_module, read_env_file, read_unit

UNITS = sorted(SYSTEMD_DIR.glob("*.service"))
SYSTEM_UNITS = Path("/lib/systemd/system")


def fake_root(tmp_path: Path) -> Path:
    """A file system root with the system's own units and a stub for every program ours run.

    `systemd-analyze verify` checks that ExecStart= programs exist and that the units they
    depend on (multi-user.target...) resolve; on this machine the venv under /opt/synthmed does
    not exist, so it gets stand-ins, and nothing else about the units changes.
    """
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
        for key, values in read_unit(unit)["Service"].items():
            if key.startswith("Exec"):
                for value in values:
                    program = root / value.lstrip("-@:+!").split()[0].lstrip("/")
                    if not program.exists():
                        program.parent.mkdir(parents=True, exist_ok=True)
                        program.write_text("#!/bin/sh\n")
                        program.chmod(0o755)
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}",
         str(root / "etc/systemd/system" / unit)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze (and the system's units) not installed",
)


@needs_systemd_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    proc = verify(fake_root(tmp_path), unit.name)
    # verify exits 0 on unknown keys and unparsable values: any message at all is a failure.
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), (
        proc.stdout + proc.stderr
    )


@needs_systemd_analyze
def test_verify_does_report_a_broken_unit(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    unit = root / "etc/systemd/system/synthmed-worker.service"
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=gently"))
    proc = verify(root, unit.name)
    assert "kill mode" in (proc.stdout + proc.stderr).lower()


def test_worker_unit_stops_the_way_prefect_needs() -> None:
    service = read_unit(SYSTEMD_DIR / "synthmed-worker.service")["Service"]
    assert service["ExecStart"][0].split()[:5] == [
        "/opt/synthmed/.venv/bin/prefect",
        "worker",
        "start",
        "--pool",
        "gpu",
    ]
    # SIGINT to the worker, which stops its own flow runs (test_worker_stop_sequence.py), and
    # SIGKILL for anything left after the timeout.
    assert service["KillSignal"] == ["SIGINT"]
    assert service["KillMode"] == ["mixed"]
    assert 10 <= int(service["TimeoutStopSec"][0]) <= 90
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["synthmed"]


def test_worker_unit_points_prefect_yaml_at_the_checkout() -> None:
    service = read_unit(SYSTEMD_DIR / "synthmed-worker.service")["Service"]
    assert f"SYNTHMED_PROJECT_DIR={service['WorkingDirectory'][0]}" in service["Environment"]
    assert service["EnvironmentFile"] == [
        "/opt/synthmed/infra/systemd/synthmed.env",
        "/etc/synthmed/worker.env",
    ]


def test_flow_runs_heartbeat_as_often_as_the_zombie_automation_expects() -> None:
    service = read_unit(SYSTEMD_DIR / "synthmed-worker.service")["Service"]
    automations = load_module(INFRA / "prefect_automations.py")
    assert (
        f"PREFECT_FLOWS_HEARTBEAT_FREQUENCY={automations.HEARTBEAT_SECONDS}"
        in service["Environment"]
    )
    trigger = automations.zombie_automation().trigger
    assert trigger.within.total_seconds() > 2 * automations.HEARTBEAT_SECONDS
    assert "prefect.flow-run.heartbeat" in trigger.after


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_unit_sets_how_it_stops_and_restarts(unit: Path) -> None:
    service = read_unit(unit)["Service"]
    for key in ("KillSignal", "KillMode", "TimeoutStopSec", "Restart"):
        assert key in service, f"{unit.name}: {key} not set"
    assert service["User"] != ["root"]
    assert read_unit(unit)["Install"]["WantedBy"] == ["multi-user.target"]


def test_environment_file_switches_telemetry_off_like_the_cli() -> None:
    assert read_env_file(SYSTEMD_DIR / "synthmed.env") == QUIET_ENV


def test_no_secret_anywhere_in_infra() -> None:
    patterns = {
        "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        "AWS secret key": re.compile(r"aws_secret_access_key|AWS_SECRET_ACCESS_KEY"),
        "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        "password": re.compile(r"(?i)password\s*[=:]\s*\S"),
    }
    for path in INFRA.rglob("*"):
        if path.is_file() and path.suffix not in {".txt"}:
            text = path.read_text(errors="replace")
            for what, pattern in patterns.items():
                assert not pattern.search(text), f"{path.relative_to(INFRA)}: {what}"
