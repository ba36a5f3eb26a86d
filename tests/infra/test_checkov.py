"""checkov on infra/terraform, from its own venv (`make .venv-checkov`: its pins clash with the
project's), offline (--skip-download). Every skip is an inline `#checkov:skip=CKV_...:reason`
next to the resource; this test holds each one to a reason and to a real need."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.readers import REPO_ROOT, TERRAFORM_DIR

pytestmark = pytest.mark.slow

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP = re.compile(r"#checkov:skip=(?P<check>CKV2?_[A-Z]+_\d+)(?::(?P<reason>.*))?")


def checkov(directory: Path) -> dict:
    assert CHECKOV.exists(), "checkov's venv is missing: run `make .venv-checkov`"
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "terraform", "--skip-download",
         "--compact", "--output", "json"],
        check=False, capture_output=True, text=True, timeout=600, cwd=directory,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: some check failed
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def skips_in_files() -> list[tuple[str, str, str]]:
    return [
        (path.name, m["check"], (m["reason"] or "").strip())
        for path in sorted(TERRAFORM_DIR.glob("*.tf"))
        for m in SKIP.finditer(path.read_text())
    ]


def test_every_skip_has_a_reason() -> None:
    skips = skips_in_files()
    assert skips, "no skips at all? then this test and README's list are stale"
    for file, check, reason in skips:
        assert len(reason) >= 30, f"{file}: {check} skipped without a real reason"


def test_checkov_passes_and_every_skip_is_needed(tmp_path: Path) -> None:
    report = checkov(TERRAFORM_DIR)
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, [
        (c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]
    ]
    assert summary["passed"] > 100  # it really read the files
    skipped = {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}
    assert {check for check, _ in skipped} == {check for _, check, _ in skips_in_files()}

    # Without the skip comments, exactly the skipped checks fail: no skip hides nothing.
    bare = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, bare, ignore=shutil.ignore_patterns(".terraform*"))
    for path in bare.glob("*.tf"):
        path.write_text(SKIP.sub("#", path.read_text()))
    failed = {(c["check_id"], c["resource"]) for c in checkov(bare)["results"]["failed_checks"]}
    assert failed == skipped
