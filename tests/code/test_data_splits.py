"""Rebalancing, grouped stratified splits and grouped k folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.config import resolve
from components.data import assign_splits, kfold, rebalance
from components.errors import ConfigError, DataError


def _frame(n_patients: int = 60, seed: int = 0) -> pd.DataFrame:
    """1-4 images per patient, about a quarter of patients malignant, some without an id."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = "malignant" if rng.random() < 0.25 else "benign"
        for _ in range(rng.integers(1, 5)):
            pid = "" if p % 10 == 0 else f"IP_{p}"
            rows.append({"image_id": f"img{len(rows)}", "label": label, "patient_id": pid})
    return pd.DataFrame(rows)


def test_rebalance_keeps_the_malignant_share() -> None:
    df = pd.DataFrame({"label": ["malignant"] * 300 + ["benign"] * 700, "x": range(1000)})
    kept = rebalance(df, 100, seed=1)

    assert len(kept) == 100
    assert (kept["label"] == "malignant").sum() == 30
    assert kept["x"].is_monotonic_increasing
    assert kept.equals(rebalance(df, 100, seed=1))
    assert not kept.index.equals(rebalance(df, 100, seed=2).index)
    assert rebalance(df, 5000, seed=1).equals(df)


def test_rebalance_quota_sums_exactly_with_odd_shares() -> None:
    df = pd.DataFrame({"label": ["a"] * 7 + ["b"] * 7 + ["c"] * 7})
    kept = rebalance(df, 10, seed=0)

    assert len(kept) == 10
    assert sorted(kept["label"].value_counts().tolist()) == [3, 3, 4]


def test_splits_keep_patients_together_and_are_stratified() -> None:
    df = _frame()
    out = assign_splits(df, val_fraction=0.15, test_fraction=0.2, seed=3)

    assert out.drop(columns="split").equals(df)
    with_id = out[out["patient_id"] != ""]
    assert (with_id.groupby("patient_id")["split"].nunique() == 1).all()
    shares = out["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.65, abs=0.08)
    assert shares["val"] == pytest.approx(0.15, abs=0.06)
    assert shares["test"] == pytest.approx(0.2, abs=0.06)
    assert (out.groupby("split")["label"].nunique() == 2).all()
    malignant = out[out["label"] == "malignant"]["split"].value_counts(normalize=True)
    assert malignant["train"] == pytest.approx(0.65, abs=0.15)
    assert assign_splits(df, 0.15, 0.2, seed=3)["split"].equals(out["split"])
    assert not assign_splits(df, 0.15, 0.2, seed=4)["split"].equals(out["split"])


def test_a_lesion_seen_under_two_patient_ids_joins_both() -> None:
    df = pd.DataFrame(
        {
            "label": ["benign"] * 3 + ["malignant"] * 3 + ["benign"] * 14,
            "patient_id": ["P1", "P2", "P2", "P3", "P4", "P5"] + [f"Q{i}" for i in range(14)],
            "lesion_id": ["L1", "L1", "", "", "", ""] + [""] * 14,
        }
    )
    for seed in range(5):
        split = assign_splits(df, 0.2, 0.2, seed=seed)["split"]
        assert split.iloc[0] == split.iloc[1] == split.iloc[2]
        # Three malignant patients: one reaches each split.
        assert sorted(split.iloc[3:6]) == ["test", "train", "val"]


def test_small_set_gets_both_classes_in_every_split() -> None:
    df = pd.DataFrame({"label": ["malignant"] * 4 + ["benign"] * 8})
    split = assign_splits(df, 0.2, 0.2, seed=0)

    assert (split.groupby("split")["label"].nunique() == 2).all()


def test_kfold_is_disjoint_covering_and_grouped() -> None:
    df = _frame(n_patients=30)
    folds = kfold(df, k=5, seed=0, group_cols=("patient_id",))

    assert len(folds) == 5
    vals = [val for _, val in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(len(df)))
    for train, val in folds:
        assert not set(train) & set(val)
        assert len(train) + len(val) == len(df)
        named = df["patient_id"] != ""
        train_patients = set(
            df.loc[named.to_numpy() & np.isin(np.arange(len(df)), train), "patient_id"]
        )
        val_patients = set(
            df.loc[named.to_numpy() & np.isin(np.arange(len(df)), val), "patient_id"]
        )
        assert not train_patients & val_patients
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 0.5 * len(df) / 5


def test_kfold_needs_enough_groups() -> None:
    df = pd.DataFrame({"label": ["benign"] * 6, "patient_id": ["A", "A", "A", "B", "B", "B"]})
    with pytest.raises(DataError, match="3 folds asked but the data has only 2 groups"):
        kfold(df, k=3, seed=0)


def test_config_rejects_fractions_that_leave_no_training_data() -> None:
    with pytest.raises(ConfigError, match=r"data\.polyps\.test_fraction: .*nothing left to train"):
        resolve({"data": {"polyps": {"val_fraction": 0.5, "test_fraction": 0.5}}})
