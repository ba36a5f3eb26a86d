"""The lesion GAN study: arm recipes, aggregation and report, publish-or-hold, a tiny whole run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from components import arms as arm_recipes
from components.config import Config, load_config
from components.errors import ConfigError, DataError
from components.experiments import lesions
from components.experiments.reporting import aggregate
from components.experiments.study import publish_or_hold
from components.imageset import ImageSet
from tests.project import make_project

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _set(n_benign: int, n_malignant: int, prefix: str, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    n = n_benign + n_malignant
    return ImageSet(
        images=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
        labels=np.array([0] * n_benign + [1] * n_malignant, dtype=np.int64),
        ids=[f"{prefix}-{i}" for i in range(n)],
    )


def _cfg(tmp_path: Path, **study: object) -> Config:
    return load_config(
        PARAMS,
        "demo",
        overrides={
            "work_dir": str(tmp_path / "build"),
            "versioning": {"remote_url": str(tmp_path / "remote"), "sets_dir": "sets"},
            **({"lesion_study": study} if study else {}),
        },
    )


def _git_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


# --------------------------------------------------------------------------------------------
# arms


def test_arm_recipes_on_tiny_arrays(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, gan_kinds=["dcgan", "acgan"], synthetic_only_kinds=["acgan"])
    names = [a.name for a in lesions.plan_arms(cfg)]
    assert names == [
        "real",
        "augmented",
        "real+dcgan",
        "real+acgan",
        "balanced-acgan",
        "synthetic-acgan",
    ]
    real, syn = _set(7, 3, "real"), _set(10, 10, "syn", seed=1)

    balanced = arm_recipes.balanced(real, syn, seed=0)
    assert balanced.labels is not None
    assert (balanced.labels == 0).sum() == (balanced.labels == 1).sum() == 7
    added = [i for i in balanced.ids or [] if i.startswith("syn")]
    assert len(added) == 4 and all(syn.labels[int(i.split("-")[1])] == 1 for i in added)

    arms = {a.family: a for a in lesions.plan_arms(cfg)}
    only = arm_recipes.training_set(arms["synthetic"], real, syn, 1.0, seed=0)
    assert only.ids and not any(i.startswith("real") for i in only.ids)

    mixed = arm_recipes.training_set(arms["real+synthetic"], real, syn, 0.5, seed=0)
    kinds = [i.split("-")[0] for i in mixed.ids or []]
    assert kinds.count("real") == 10 and kinds.count("syn") == 5
    assert arm_recipes.training_set(arms["augmented"], real, syn, 1.0, 0) is real

    with pytest.raises(DataError, match="needs 4 synthetic malignant images, the set has 2"):
        arm_recipes.balanced(real, _set(10, 2, "syn"), seed=0)


def test_study_config_rejects_inconsistent_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="balanced_kind"):
        _cfg(tmp_path, gan_kinds=["dcgan"])
    with pytest.raises(ConfigError, match="synthetic_only_kinds"):
        _cfg(tmp_path, gan_kinds=["acgan"], synthetic_only_kinds=["sngan"])
    with pytest.raises(ConfigError, match="gan_overrides"):
        _cfg(tmp_path, gan_overrides={"stepz": 3})


# --------------------------------------------------------------------------------------------
# aggregation and report


def _result(arm: str, seed: int, auc: float, flagged: bool = False) -> dict:
    metrics = {
        m: auc for m in ("balanced_accuracy", "sensitivity", "specificity", "f1", "accuracy")
    }
    return {
        "arm": arm,
        "seed": seed,
        "flagged": flagged,
        "train_images": 10,
        "metrics": {**metrics, "roc_auc": auc},
    }


def test_aggregate_and_report(tmp_path: Path) -> None:
    rows = aggregate(
        [_result("real", 0, 0.6), _result("real", 1, 0.8), _result("real+dcgan", 0, 0.7, True)],
        lesions.ARM_METRICS,
        keep=("train_images",),
        repeats="seeds",
    )
    assert [r["arm"] for r in rows] == ["real", "real+dcgan"]
    assert rows[0]["roc_auc_mean"] == pytest.approx(0.7)
    assert rows[0]["roc_auc_std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert rows[1]["roc_auc_std"] == 0.0 and rows[1]["flagged"] and rows[1]["seeds"] == 1

    grid = tmp_path / "grid.png"
    grid.write_bytes(b"\x89PNG fake")
    sets = {
        "dcgan": {
            "name": "dcgan-64-demo-1234abcd",
            "published": False,
            "train_seconds": 3.0,
            "grid": str(grid),
            "metrics": {"fid_inception": 12.5},
        }
    }
    paths = lesions.build_report(rows, sets, _cfg(tmp_path)).write(tmp_path / "report")
    page = paths["report.html"].read_text()
    assert "<table>" in page and "<td>real+dcgan *</td>" in page
    assert "0.700 ± 0.141" in page and "12.500" in page and "NO (memorization)" in page
    assert page.count("<img") == 2 and "data:image/png;base64," in page
    assert "sample standard deviation (ddof=1)" in page  # the one std convention, stated
    md = paths["report.md"].read_text()
    assert "| real | 2 | 10 | 0.700 ± 0.141" in md
    assert paths["arms.png"].read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------------------
# metrics protocol and publishing


class _PoolFeatures(nn.Module):
    """A tiny stand-in for Inception: 2x2 average-pooled pixels (12 features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def test_cached_features_give_generative_metrics_numbers(tmp_path: Path) -> None:
    from components.metrics.fid import (
        draw_index,
        feature_distances,
        generative_metrics,
        inception_features,
    )

    cfg = _cfg(tmp_path, metric_samples=6)
    cfg = lesions.study_config(cfg)
    real, syn = _set(9, 0, "r").images, _set(8, 0, "s", seed=3).images
    net = _PoolFeatures()
    expected = generative_metrics(real, syn, cfg, net)
    rng = np.random.default_rng(cfg.seed)
    ri = draw_index(len(real), 6, rng)
    si = draw_index(len(syn), 6, rng)
    feats = inception_features(real, net, 4, "cpu")[ri]
    got = feature_distances(
        feats, inception_features(syn[si], net, 4, "cpu"), cfg.metrics, cfg.seed, "inception"
    )
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-6), key


@pytest.mark.slow
def test_memorizing_set_is_held_back_and_clean_set_published(tmp_path: Path) -> None:
    from components.versioning import list_versions

    root = _git_repo(tmp_path / "project")
    cfg = _cfg(tmp_path)
    meta = {"generator_kind": "dcgan", "seed": 0}
    held_dir = lesions.study_dir(cfg) / "unpublished"
    held = publish_or_hold(_set(2, 2, "syn", seed=1), False, cfg, root, meta, held_dir)
    published = publish_or_hold(_set(2, 2, "syn", seed=2), True, cfg, root, meta, held_dir)

    assert not held["published"] and held["md5"] is None
    assert Path(held["set_dir"]).is_relative_to(lesions.study_dir(cfg))
    assert not Path(held["set_dir"] + ".dvc").exists()
    assert published["published"] and published["md5"].endswith(".dir")
    assert Path(published["set_dir"] + ".dvc").is_file()
    names = [v["name"] for v in list_versions(root, cfg.versioning)]
    assert names == [published["name"]]
    assert any((tmp_path / "remote").rglob("*")), "the clean set was pushed to the remote"


# --------------------------------------------------------------------------------------------
# a whole (tiny) study through the component function


TINY_STUDY = {
    "data": {"lesions": {"sizes": [32], "max_images": 32}, "polyps": {"enabled": False}},
    "gan": {"image_size": 32},
    "generate": {"n_images": 32},
    "evaluate": {"image_size": 32, "epochs": 1, "batch_size": 8},
    "metrics": {"quality_pairs": 8, "kid_subsets": 2, "batch_size": 16},
    "lesion_study": {
        # dcgan: an unconditional kind, trained one model per class, judged but unused.
        "gan_kinds": ["dcgan", "acgan"],
        "image_size": 32,
        "seeds": [0],
        "metric_samples": 12,
        "arms": ["balanced", "synthetic"],
        "synthetic_only_kinds": ["acgan"],
        "evaluate_overrides": {},
        "gan_overrides": {"steps": 2, "base_channels": 4, "batch_size": 8, "checkpoint_every": 2,
                          "sample_every": 2, "ema_start_step": 0},
    },
}  # fmt: skip


@pytest.mark.slow
def test_tiny_study_end_to_end(
    tmp_path: Path, mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    root = make_project(tmp_path / "project", TINY_STUDY, per_class=16)
    monkeypatch.chdir(root)
    plan = None

    def keep_plan(ctx):  # type: ignore[no-untyped-def]
        nonlocal plan
        plan = build_plan(ctx)
        return plan

    build_plan = lesions.build_plan
    monkeypatch.setattr(lesions, "build_plan", keep_plan)
    result = lesions.run_study(root, "demo", extractor=_PoolFeatures())

    # The plan names what each step needs: the judges wait for the domain classifier's arm.
    assert plan is not None and set(plan["set-acgan"].upstream()) == {
        "gan-acgan", "features-real", "arm-real-seed0"
    }  # fmt: skip
    assert plan.names.index("arm-real-seed0") < plan.names.index("set-dcgan")
    arms = [r["arm"] for r in result["rows"]]
    assert arms == ["real", "balanced-acgan", "synthetic-acgan"]
    by_arm = {r["arm"]: r for r in result["results"]}
    assert (
        by_arm["synthetic-acgan"]["synthetic_images"]
        == by_arm["synthetic-acgan"]["train_images"]
        == 32
    )
    assert by_arm["real"]["synthetic_images"] == 0
    record = result["sets"]["acgan"]
    assert {"fid_inception", "kid_domain", "memorization_share", "quality_ssim_mean"} <= set(
        record["metrics"]
    )
    assert record["metrics"]["fid_n_real"] <= 12 and record["metrics"]["kid_subsets"] == 2
    flagged = not record["published"]
    assert all(r["flagged"] == flagged for r in result["rows"] if r["arm"].endswith("acgan"))
    page = Path(result["report"]).read_text()
    assert "balanced-acgan" in page and "<img" in page
    saved = json.loads((Path(result["report"]).parent / "results.json").read_text())
    assert [r["arm"] for r in saved["rows"]] == arms

    runs = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{result['parent_run_id']}'"
    )
    assert sorted(runs["tags.mlflow.runName"]) == sorted(
        ["gan-dcgan", "set-dcgan", "gan-acgan", "set-acgan", *(f"{a}-seed0" for a in arms)]
    )
    assert set(runs["status"]) == {"FINISHED"}
    assert result["sets"]["dcgan"]["train_seconds"] > 0
    assert (Path(result["sets"]["dcgan"]["set_dir"]) / "manifest.csv").is_file()
    parent = mlflow.get_run(result["parent_run_id"])
    assert {"real.roc_auc_mean", "balanced-acgan.f1_std"} <= set(parent.data.metrics)
    # The data came through the pipeline's own stages, which DVC recorded.
    assert "validate@demo" in (root / "dvc.lock").read_text()


@pytest.mark.slow
def test_evaluate_stage_and_study_arm_feed_the_classifier_identical_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components import classifier, stages
    from components.arms import Arm
    from components.experiments.study import StudyContext, prepare_data
    from components.synthetic import write_set
    from components.train import image_tensor

    root = make_project(tmp_path / "project")
    monkeypatch.chdir(root)
    base, cfg = load_config(root / "params.yaml", "demo"), None
    prepare_data(root, base)
    cfg = lesions.study_config(base)
    # A synthetic set at the GAN's size, as the generate stage records it.
    rng = np.random.default_rng(0)
    syn = ImageSet(rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8),
                   np.array([0, 1] * 12), ids=[f"syn-{i:06d}" for i in range(24)])  # fmt: skip
    set_dir = write_set(syn, root / base.versioning.sets_dir / "syn-set", {"generator_kind": "acgan"})
    info = {"name": "syn-set", "generator_kind": "acgan", "generator_registered_model": "m",
            "generator_model_version": 1, "source_manifest_sha256": "x"}  # fmt: skip
    (base.stage_dir("generate")).mkdir(parents=True, exist_ok=True)
    (base.stage_dir("generate") / "set.json").write_text(json.dumps(info))

    fed: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    class Fed(Exception):
        pass

    def record(train, val, cfg_, runtime, reporter, seed, augment=False):  # type: ignore[no-untyped-def]
        fed.append((str(seed), image_tensor(train.images, cfg_.image_size),
                    image_tensor(val.images, cfg_.image_size)))  # fmt: skip
        raise Fed

    monkeypatch.setattr(classifier, "train_classifier", record)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for arm_name in ("real", "real+synthetic"):
        # The same classifier settings on both sides (the study's overrides included).
        stage_cfg = base.model_copy(
            update={"evaluate": cfg.evaluate.model_copy(update={"arms": [arm_name]})}
        )
        with pytest.raises(Fed):
            stages.evaluate(stage_cfg)
        ctx = StudyContext(cfg, str(root), None)
        arm = Arm(arm_name, arm_name, None if arm_name == "real" else "acgan")  # type: ignore[arg-type]
        record_set = {"set_dir": str(set_dir), "published": True, "name": "syn-set"}
        with pytest.raises(Fed):
            lesions.study_arm(ctx, arm, base.seed, None if arm_name == "real" else record_set)
    (s1, train1, val1), (s2, train2, val2), (s3, train3, val3), (s4, train4, val4) = fed
    assert s1 == s2 and torch.equal(train1, train2) and torch.equal(val1, val2)
    assert s3 == s4 and torch.equal(train3, train4) and torch.equal(val3, val4)
    assert len(train3) > len(train1)  # the mixed arm really added synthetic images
