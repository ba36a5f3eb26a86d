"""Bad input through the real stages and the CLI: quarantined with a reason, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from components import stages
from components.config import load_config
from components.errors import ValidationFailed

SYNTHMED = str(Path(sys.executable).with_name("synthmed"))


def _lesions_with_bad_files(src: Path, dest: Path, good: int = 16) -> Path:
    dest.mkdir(parents=True)
    for meta in sorted(src.glob("*.json"))[:good]:
        shutil.copy(meta, dest / meta.name)
        shutil.copy(meta.with_suffix(".jpg"), dest / meta.with_suffix(".jpg").name)
    template = json.loads(next(iter(sorted(src.glob("*.json")))).read_text())
    jpg = next(iter(sorted(src.glob("*.jpg")))).read_bytes()

    def add(name: str, image: bytes, meta: str) -> None:
        (dest / f"{name}.jpg").write_bytes(image)
        (dest / f"{name}.json").write_text(meta)

    add("ISIC_9000001", jpg[: len(jpg) // 3], json.dumps({**template, "name": "ISIC_9000001"}))
    add("ISIC_9000002", b"", json.dumps({**template, "name": "ISIC_9000002"}))
    add("ISIC_9000003", jpg, '{"meta": {"clinical": ')  # malformed JSON
    odd = json.loads(json.dumps(template))
    odd["meta"]["clinical"]["benign_malignant"] = "indeterminate"
    add("ISIC_9000004", jpg, json.dumps({**odd, "name": "ISIC_9000004"}))
    return dest


def _cfg(tmp_path: Path, source: Path, max_failed_share: float):  # type: ignore[no-untyped-def]
    root = Path(__file__).resolve().parents[2]
    return load_config(
        root / "params.yaml",
        "demo",
        overrides={
            "work_dir": str(tmp_path / "build"),
            "data": {"lesions": {"source": str(source)},
                     "polyps": {"source": str(root / "data/samples/polyp-phantoms")}},
            "validation": {"max_failed_share": max_failed_share},
            "tracking": {"artifact_location": str(tmp_path / "artifacts")},
        },
    )


@pytest.mark.slow
def test_bad_rows_are_quarantined_and_the_batch_goes_on(
    isic_samples: Path, tmp_path: Path, mlflow_sqlite: str
) -> None:
    source = _lesions_with_bad_files(isic_samples, tmp_path / "lesions")
    cfg = _cfg(tmp_path, source, max_failed_share=0.5)
    stages.ingest(cfg)
    metrics = stages.validate(cfg)
    out = tmp_path / "build" / "demo" / "validate" / "lesions"
    quarantine = pd.read_csv(out / "quarantine.csv")
    reasons = dict(zip(quarantine["image_id"], quarantine["reason"], strict=True))
    assert set(reasons) == {"ISIC_9000001", "ISIC_9000002", "ISIC_9000003", "ISIC_9000004"}
    assert "not decodable" in reasons["ISIC_9000002"]
    assert "indeterminate" in reasons["ISIC_9000004"]
    clean = pd.read_csv(out / "dataset.csv")
    assert len(clean) == 16 and not set(reasons) & set(clean["image_id"])
    assert metrics["lesions"]["quarantined"] == 4


@pytest.mark.slow
def test_too_many_failures_stop_the_stage_with_one_line(
    isic_samples: Path, tmp_path: Path, mlflow_sqlite: str
) -> None:
    source = _lesions_with_bad_files(isic_samples, tmp_path / "lesions", good=8)
    cfg = _cfg(tmp_path, source, max_failed_share=0.1)
    stages.ingest(cfg)
    with pytest.raises(ValidationFailed) as err:
        stages.validate(cfg)
    assert "\n" not in str(err.value) and "max_failed_share" in str(err.value)
    # The report explaining the failure was still written.
    assert (tmp_path / "build/demo/validate/lesions/quarantine.csv").is_file()


@pytest.mark.slow
def test_a_failed_validation_leaves_nothing_the_next_stage_reads(
    isic_samples: Path, tmp_path: Path, mlflow_sqlite: str
) -> None:
    from components.errors import DataError

    source = _lesions_with_bad_files(isic_samples, tmp_path / "lesions", good=8)
    passing = _cfg(tmp_path, source, max_failed_share=0.9)
    stages.ingest(passing)
    stages.validate(passing)
    table = tmp_path / "build/demo/validate/lesions/dataset.csv"
    assert table.is_file()  # a validation that passed, earlier
    failing = _cfg(tmp_path, source, max_failed_share=0.1)
    with pytest.raises(ValidationFailed):
        stages.validate(failing)
    assert not table.exists()  # not the new rows, and not the old ones either
    with pytest.raises(DataError, match="run the 'validate' stage first"):
        stages.train(failing)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    return subprocess.run([SYNTHMED, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_params_typo_is_one_line_exit_2(repo_root: Path, tmp_path: Path) -> None:
    text = (repo_root / "params.yaml").read_text().replace("  latent_dim:", "  latent_dims:")
    (tmp_path / "params.yaml").write_text(text)
    proc = _cli(["train-gan"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "synthmed: error: params.yaml: gan.latent_dims: unknown key (did you mean 'latent_dim'?)"
    )
    assert "Traceback" not in proc.stderr + proc.stdout


def test_cli_missing_source_is_one_line_exit_2(repo_root: Path, tmp_path: Path) -> None:
    text = (repo_root / "params.yaml").read_text().replace(
        "source: data/samples/isic-uda1/images", "source: no/such/folder"
    )
    (tmp_path / "params.yaml").write_text(text)
    proc = _cli(["ingest"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no/such/folder" in lines[0], proc.stderr


def test_cli_missing_upstream_stage_says_what_to_run(repo_root: Path, tmp_path: Path) -> None:
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    proc = _cli(["evaluate"], tmp_path)
    assert proc.returncode == 2
    assert "run the 'validate' stage first" in proc.stderr or "run the 'generate'" in proc.stderr


@pytest.mark.parametrize(
    "command",
    ["ingest", "validate", "train-gan", "generate", "evaluate", "promote", "demo", "models",
     "sample", "reproduce"],
)
def test_every_command_help_shows_an_example(command: str, repo_root: Path) -> None:
    proc = _cli([command, "--help"], repo_root)
    assert proc.returncode == 0
    assert "Example:" in proc.stdout and f"synthmed {command}" in proc.stdout
