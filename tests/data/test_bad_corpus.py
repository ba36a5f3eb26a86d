"""The bad-input corpus through the real stages and the real CLI.

Every layout (ISIC legacy, metadata CSV, challenge CSV; Kvasir, CVC, RGBA) is generated with good
rows and one row per defect (tests/data/corpus.py). The ingest and validate stages run on it for
real (GX, MLflow sqlite); each defective row must be quarantined with its reason and every good row
must reach dataset.csv. Defects that leave nothing to ingest stop the CLI with one line, exit 2.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from components import stages
from components.config import load_config
from tests.data.corpus import (
    LESION_LAYOUTS,
    POLYP_LAYOUTS,
    Expected,
    build_kvasir,
    build_legacy,
    picture,
    save,
)

pytestmark = pytest.mark.slow

SYNTHMED = str(Path(sys.executable).with_name("synthmed"))
PAIRS = [("isic_legacy", "kvasir"), ("isic_csv", "cvc"), ("challenge_csv", "rgba")]


def _overrides(root: Path, lesions: Path, polyps: Path, db: Path) -> dict[str, Any]:
    return {
        "work_dir": str(root / "build"),
        "data": {"lesions": {"source": str(lesions)}, "polyps": {"source": str(polyps)}},
        "tracking": {"tracking_uri": f"sqlite:///{db}",
                     "artifact_location": str(root / "artifacts")},
    }  # fmt: skip


@pytest.fixture(scope="module")
def corpus(
    repo_root: Path, tmp_path_factory: pytest.TempPathFactory, _mlflow_template_db: Path
) -> dict[str, dict[str, Any]]:
    """Each pair of layouts ingested and validated once, with no failure threshold."""
    runs: dict[str, dict[str, Any]] = {}
    for lesion_layout, polyp_layout in PAIRS:
        root = tmp_path_factory.mktemp(lesion_layout)
        expected = {
            lesion_layout: LESION_LAYOUTS[lesion_layout](root / "lesions"),
            polyp_layout: POLYP_LAYOUTS[polyp_layout](root / "polyps"),
        }
        shutil.copy(_mlflow_template_db, root / "mlflow.db")
        overrides = _overrides(root, root / "lesions", root / "polyps", root / "mlflow.db")
        overrides["validation"] = {"max_failed_share": 1.0}
        cfg = load_config(repo_root / "params.yaml", "demo", overrides=overrides)
        # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; undo it, or later tests' child
        # processes (dvc repro) would log into this module's store.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
            ingested = stages.ingest(cfg)
            stages.validate(cfg)
        for dataset, layout in (("lesions", lesion_layout), ("polyps", polyp_layout)):
            runs[layout] = {
                "expected": expected[layout],
                "format": ingested[dataset]["format"],
                "out": root / "build" / "demo" / "validate" / dataset,
                "root": root,
            }
    return runs


def _verdicts(out: Path) -> tuple[dict[str, str], set[str]]:
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    clean = pd.read_csv(out / "dataset.csv", dtype=str, keep_default_na=False)
    reasons: dict[str, str] = {}
    for image_id, reason in zip(quarantine["image_id"], quarantine["reason"], strict=True):
        reasons[image_id] = f"{reasons[image_id]} | {reason}" if image_id in reasons else reason
    return reasons, set(clean["image_id"])


@pytest.mark.parametrize("layout", [layout for pair in PAIRS for layout in pair])
def test_every_defect_is_quarantined_with_its_reason_and_good_rows_go_on(
    corpus: dict[str, dict[str, Any]], layout: str
) -> None:
    run = corpus[layout]
    expected: Expected = run["expected"]
    reasons, clean = _verdicts(run["out"])

    assert run["format"] == layout  # auto-detected
    wrong = {}
    for image_id, want in expected.items():
        if want is None and (image_id not in clean or image_id in reasons):
            wrong[image_id] = f"should pass, got {reasons.get(image_id)!r}"
        elif want is not None and (image_id in clean or want not in reasons.get(image_id, "")):
            wrong[image_id] = f"want {want!r}, got {reasons.get(image_id)!r}"
    assert wrong == {}
    assert clean == {i for i, want in expected.items() if want is None}
    assert set(reasons) == {i for i, want in expected.items() if want is not None}
    assert not [r for r in reasons.values() if "\n" in r or re.search(r"0x[0-9a-fA-F]{6,}", r)]


def test_the_corpus_covers_at_least_twenty_kinds_of_defect(
    corpus: dict[str, dict[str, Any]],
) -> None:
    kinds = {(layout, want) for layout, run in corpus.items()
             for want in run["expected"].values() if want}  # fmt: skip
    assert len(kinds) >= 20, kinds


def test_splits_of_the_corpus_never_split_a_patient(corpus: dict[str, dict[str, Any]]) -> None:
    clean = pd.read_csv(corpus["isic_csv"]["out"] / "dataset.csv", dtype=str,
                        keep_default_na=False)  # fmt: skip
    with_patient = clean[clean["patient_id"] != ""]
    assert (with_patient.groupby("patient_id")["split"].nunique() == 1).all()


# ------------------------------------------------------------------------------------------
# fatal defects: one line on stderr, exit status 2, through the installed CLI


def _cli(args: list[str], cwd: Path, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}  # PYTHONPATH kept
    return subprocess.run(
        [SYNTHMED, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` deep-merged into it (a new dict)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _params(repo_root: Path, cwd: Path, overrides: dict[str, Any]) -> Path:
    """params.yaml of the repo with ``overrides`` merged into its base sections."""
    params = _merge(yaml.safe_load((repo_root / "params.yaml").read_text()), overrides)
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return cwd / "params.yaml"


def _lesions_with_csv(root: Path, text: str) -> Path:
    for i in (1, 2, 3):
        save(root / f"ISIC_{i:07d}.jpg", picture(i))
    (root / "metadata.csv").write_text(text)
    return root


def _wrong_delimiter(root: Path) -> dict[str, Any]:
    text = "isic_id;benign_malignant\n" + "".join(f"ISIC_{i:07d};benign\n" for i in (1, 2, 3))
    return {"data": {"lesions": {"source": str(_lesions_with_csv(root / "in", text))}}}


def _no_label_column(root: Path) -> dict[str, Any]:
    text = "isic_id,patient_id\n" + "".join(f"ISIC_{i:07d},IP_1\n" for i in (1, 2, 3))
    return {"data": {"lesions": {"source": str(_lesions_with_csv(root / "in", text))}}}


def _challenge_without_target(root: Path) -> dict[str, Any]:
    text = "image_name,patient_id\n" + "".join(f"ISIC_{i:07d},IP_1\n" for i in (1, 2, 3))
    source = _lesions_with_csv(root / "in", text)
    return {"data": {"lesions": {"source": str(source), "format": "challenge_csv"}}}


def _masks_only(root: Path) -> dict[str, Any]:
    save(root / "in" / "masks" / "a.png", picture(1))
    return {"data": {"polyps": {"source": str(root / "in"), "format": "kvasir"}}}


def _output_not_writable(root: Path) -> dict[str, Any]:
    # Root ignores permission bits, so the unwritable place is one no user can create: a folder
    # under a regular file (ENOTDIR), which is what a mistyped work_dir often hits.
    (root / "blocker").write_text("a file, not a folder")
    return {"work_dir": str(root / "blocker" / "build")}


FATAL = [
    (_wrong_delimiter, ("metadata.csv: not an ISIC metadata CSV "
                        "(one column 'isic_id;benign_malignant': wrong delimiter?)")),
    (_no_label_column, ("metadata.csv: no label column (benign_malignant or diagnosis_1) "
                        "for format isic_csv")),
    (_challenge_without_target, "metadata.csv: no 'target' column for format challenge_csv"),
    (_masks_only, "no images in a 'images' folder (kvasir layout)"),
    (_output_not_writable, "blocker/build/demo/ingest/lesions: cannot write (Not a directory: "),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "message"), FATAL, ids=[f.__name__[1:] for f, _ in FATAL])
def test_fatal_input_is_one_line_and_exit_2(
    setup: Any, message: str, repo_root: Path, tmp_path: Path, _mlflow_template_db: Path
) -> None:
    shutil.copy(_mlflow_template_db, tmp_path / "mlflow.db")
    base = {"data": {"lesions": {"source": str(repo_root / "data/samples/isic-uda1/images")},
                     "polyps": {"source": str(repo_root / "data/samples/polyp-phantoms")}},
            "work_dir": str(tmp_path / "build"),
            "tracking": {"artifact_location": str(tmp_path / "artifacts")}}  # fmt: skip
    params = _params(repo_root, tmp_path, _merge(base, setup(tmp_path)))
    proc = _cli(["ingest", "--params", str(params)], tmp_path, tmp_path / "mlflow.db")

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("synthmed: error: "), proc.stderr[-3000:]
    assert message in lines[0]
    assert "Traceback" not in proc.stdout


def test_both_datasets_over_threshold_named_in_one_line(
    corpus: dict[str, dict[str, Any]], repo_root: Path
) -> None:
    """The corpus fails both thresholds (10%): the CLI's one line names lesions and polyps."""
    root = corpus["isic_legacy"]["root"]
    overrides = _overrides(root, root / "lesions", root / "polyps", root / "mlflow.db")
    params = _params(repo_root, root, overrides)
    proc = _cli(["validate", "--params", str(params)], root, root / "mlflow.db")

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].count("failed validation, more than max_failed_share 10.0%") == 2
    lesions_part, polyps_part = lines[0].split(" | ")
    assert lesions_part.startswith("synthmed: error: lesions: ")
    assert polyps_part.startswith("polyps: ")
    assert str(root / "build/demo/validate/polyps/quarantine.csv") in polyps_part


def test_a_second_ingest_of_the_corpus_is_byte_identical(
    repo_root: Path, tmp_path: Path, mlflow_sqlite: str
) -> None:
    """Reasons are a function of the files only: same corpus, same manifest and quarantine."""
    build_legacy(tmp_path / "lesions")
    build_kvasir(tmp_path / "polyps")
    overrides = _overrides(tmp_path, tmp_path / "lesions", tmp_path / "polyps",
                           tmp_path / "mlflow.db")  # fmt: skip
    overrides["validation"] = {"max_failed_share": 1.0}
    cfg = load_config(repo_root / "params.yaml", "demo", overrides=overrides)
    names = ["ingest/lesions/manifest.csv", "ingest/polyps/manifest.csv",
             "validate/lesions/quarantine.csv", "validate/polyps/quarantine.csv",
             "validate/lesions/dataset.csv", "validate/polyps/dataset.csv"]  # fmt: skip
    outputs = []
    for _ in range(2):
        stages.ingest(cfg)
        stages.validate(cfg)
        outputs.append({n: (tmp_path / "build/demo" / n).read_bytes() for n in names})
    assert outputs[0] == outputs[1]
    assert b"object at 0x" not in outputs[0]["ingest/lesions/manifest.csv"]
