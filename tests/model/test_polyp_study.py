"""The polyp study's parts: folds, mask statistics, arm sets, and a tiny study end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.config import PolypStudyConfig, load_config
from components.data.phantoms import phantom
from components.errors import DataError
from components.experiments import polyps
from components.imageset import ImageSet
from components.runtime import make_runtime, torch_threads
from components.segmenter import METRICS

RUNTIME = make_runtime("cpu", "fp32", False)


def phantoms(n: int, size: int = 64, first: int = 0) -> ImageSet:
    pairs = [phantom(np.random.default_rng([7, first + i]), size) for i in range(n)]
    return ImageSet(
        np.stack([p[0] for p in pairs]),
        masks=np.stack([p[1] for p in pairs]),
        ids=[f"ph{first + i:03d}" for i in range(n)],
    )


def study_data(n_pool: int, n_test: int, size: int = 64) -> polyps.StudyData:
    pool, test = phantoms(n_pool, size), phantoms(n_test, size, first=100)
    table = pd.DataFrame({"image_id": pool.ids, "patient_id": "", "lesion_id": ""})
    return polyps.StudyData(pool, table, test, manifest_sha256="0" * 64)


def test_folds_are_disjoint_cover_the_pool_and_never_hold_a_test_image() -> None:
    table = pd.DataFrame({"image_id": [f"p{i}" for i in range(10)], "patient_id": ""})
    table.loc[[0, 1], "patient_id"] = "same-patient"
    folds = polyps.make_folds(table, ["t0", "t1"], k=3, seed=0)
    vals = [set(f.val) for f in folds]
    assert set().union(*vals) == set(range(10))
    assert sum(len(v) for v in vals) == 10  # disjoint
    for fold in folds:
        assert not set(fold.train) & set(fold.val)
        assert set(fold.train) | set(fold.val) == set(range(10))
        # One patient's images stay on one side.
        assert len({int(0 in fold.val), int(1 in fold.val)}) == 1
    with pytest.raises(DataError, match="test images are in the pool"):
        polyps.make_folds(table, ["p3"], k=3, seed=0)


def test_mask_statistics_on_hand_made_masks() -> None:
    masks = np.zeros((3, 8, 8), dtype=np.uint8)
    masks[0, :2, :2] = 1
    masks[0, 5:, 5:] = 1  # two islands, 4 + 9 pixels
    masks[1, 3, 3] = masks[1, 4, 4] = 1  # touching only diagonally: two components
    stats = polyps.mask_statistics(masks)  # mask 2 is empty
    assert [polyps.count_components(m) for m in masks] == [2, 2, 0]
    assert [polyps._bfs_components(m) for m in masks] == [2, 2, 0]
    assert stats["area_share_mean"] == pytest.approx((13 / 64 + 2 / 64 + 0) / 3)
    assert stats["components_mean"] == pytest.approx(4 / 3)
    assert stats["components_max"] == 2
    assert stats["empty_share"] == pytest.approx(1 / 3)
    assert stats["single_component_share"] == 0


def test_arm_sets_take_synthetic_data_only_from_the_folds_training_images() -> None:
    data = study_data(6, 2)
    synthetic = ImageSet(
        np.repeat(data.pool.images, 2, axis=0),
        masks=np.repeat(data.pool.masks, 2, axis=0),
        ids=[f"{i}-s{k:03d}" for i in data.pool.ids for k in range(2)],
    )
    fold = polyps.Fold(0, np.array([0, 2, 4]), np.array([1, 3, 5]))
    cfg = PolypStudyConfig(sweep_sizes=[2, 5])
    sets = polyps.arm_sets(data, fold, synthetic, synthetic, cfg, seed=0)
    assert set(sets) == {"real", "synthetic", "synthetic+style", "real-n2", "real+synthetic-n2"}
    train_ids = {"ph000", "ph002", "ph004"}
    assert set(polyps.source_ids(sets["synthetic"])) == train_ids
    assert len(sets["synthetic"]) == 6
    real_n2 = set(sets["real-n2"].ids)
    assert len(real_n2) == 2 and real_n2 <= train_ids
    mixed = sets["real+synthetic-n2"]
    assert len(mixed) == 2 + 4
    assert set(mixed.ids[:2]) == real_n2 and set(polyps.source_ids(mixed)[2:]) == real_n2


TINY_STUDY = {
    "singan": {"min_size": 12, "max_size": 24, "scale_factor": 0.5, "num_layer": 3, "nfc": 8,
               "niter": 2, "d_steps": 1, "g_steps": 1, "models_at_once": 6},
    "style_transfer": {"method": "reinhard-lab"},
    # mobilenet_v2 at 32 px: the cheapest UNet++ that still exercises every step.
    "data": {"polyps": {"sizes": [32]}},
    "polyp_study": {"encoder": "mobilenet_v2", "image_size": 32, "epochs": 1, "batch_size": 8,
                    "folds": 2, "synthetic_per_real": 2, "sweep_sizes": [2]},
}  # fmt: skip


@pytest.mark.slow
def test_tiny_study_end_to_end(
    tmp_path: Path, mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from tests.project import make_project

    root = make_project(tmp_path / "project", TINY_STUDY, per_class=4, polyps=10)
    monkeypatch.chdir(root)
    with torch_threads(2):
        result = polyps.run_study(root, "demo")

    arms = ["real", "synthetic", "synthetic+style", "real-n2", "real+synthetic-n2"]
    rows = result["rows"]
    assert [r["arm"] for r in rows] == arms
    assert sorted((r["arm"], r["fold"]) for r in result["results"]) == sorted(
        (a, f) for a in arms for f in (0, 1)
    )
    for row in rows:
        assert row["folds"] == 2
        for m in METRICS:
            assert 0 <= row[f"{m}_mean"] <= 1 and row[f"{m}_std"] >= 0
    # The arms trained on the sets the study wrote (published with DVC, or held back).
    for kind in ("singan-seg", "singan-seg-style"):
        record = result["sets"][kind]
        assert (Path(record["set_dir"]) / "set.json").is_file()
        assert record["published"] == (record["md5"] is not None)
        assert record["mask_stats"]["synthetic"]["n"] == 2 * record["mask_stats"]["real"]["n"]
        assert record["memorization"]["features"] == "pixels"
    assert result["style_method"] == "reinhard-lab"
    promo = result["promotion"]
    best = max(rows, key=lambda r: r["iou_mean"])
    assert promo["arm"] == best["arm"] and promo["registered_model"] == "synthmed-polyp-segmenter"
    version = mlflow.MlflowClient().get_model_version("synthmed-polyp-segmenter", promo["version"])
    assert version.tags["synthmed.arm"] == best["arm"]
    runs = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{result['parent_run_id']}'")
    assert "promotion" in set(runs["tags.mlflow.runName"])

    out = Path(result["report"]).parent
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # plot + three sample grids, all inline
    assert 'src="http' not in page and "real+synthetic-n2" in page
    assert "iou_vs_n.png" in (out / "report.md").read_text()
    assert (out / "iou_vs_n.png").read_bytes().startswith(b"\x89PNG")
    assert not (polyps.study_dir(load_config(root / "params.yaml")) / "models").exists() or not any(
        (polyps.study_dir(load_config(root / "params.yaml")) / "models").rglob("*.pt")
    )  # only the promoted model was kept, and it lives in the registry
