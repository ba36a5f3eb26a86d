"""Subsetting and splitting a manifest: rebalance, train/val/test, k folds.

Images of one patient (or one lesion, photographed several times) are near-duplicates; if they
land on both sides of a split, test scores measure memory rather than skill. So rows that share
any non-empty ``patient_id``, ``lesion_id`` or ``duplicate_group`` (near-duplicate images that
validation kept, see components/validation.py) form one group (transitively: a lesion seen under
two patient ids joins both), and a group never straddles two splits. Within that constraint the
splits are stratified by label, so the rare malignant class reaches every split.

Everything is deterministic: the same frame (rows in the same order) and seed give the same
result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from components.errors import DataError

SPLITS = ("train", "val", "test")
GROUP_COLS = ("patient_id", "lesion_id", "duplicate_group")


def rebalance(
    df: pd.DataFrame, max_images: int, seed: int, label_col: str = "label"
) -> pd.DataFrame:
    """Keep at most ``max_images`` rows, each label's share preserved (as in the seed project's
    5k ISIC subset). Rows keep their order; fewer rows than ``max_images`` are all kept.
    """
    if len(df) <= max_images:
        return df.copy()
    labels = _labels(df, label_col)
    classes, counts = np.unique(labels, return_counts=True)
    quota = _largest_remainder(counts * max_images / len(df), max_images)
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero(labels == cls), size=q, replace=False)
        for cls, q in zip(classes, quota, strict=True)
    ]
    return df.iloc[np.sort(np.concatenate(keep))].copy()


def assign_splits(
    df: pd.DataFrame,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    stratify: str | None = "label",
    group_cols: Sequence[str] = GROUP_COLS,
) -> pd.DataFrame:
    """A copy of ``df`` with a ``split`` column in {train, val, test}.

    Groups (see module docstring) stay together; classes of ``stratify`` are spread in the
    requested proportions, and every split gets each class that has at least three groups.
    """
    if val_fraction <= 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"bad fractions: val {val_fraction}, test {test_fraction}")
    fractions = [1 - val_fraction - test_fraction, val_fraction, test_fraction]
    fold = _assign(df, fractions, seed, stratify, group_cols)
    return df.assign(split=np.asarray(SPLITS)[fold])


def kfold(
    df: pd.DataFrame,
    k: int,
    seed: int,
    group_cols: Sequence[str] = GROUP_COLS,
    stratify: str | None = "label",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train positions, val positions) pairs; groups stay in one fold, folds disjoint."""
    if k < 2:
        raise ValueError(f"kfold needs k >= 2, got {k}")
    n_groups = len(np.unique(_groups(df, group_cols)))
    if n_groups < k:
        raise DataError(f"kfold: {k} folds asked but the data has only {n_groups} groups")
    fold = _assign(df, [1 / k] * k, seed, stratify, group_cols)
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(k)]


def _labels(df: pd.DataFrame, col: str | None) -> np.ndarray:
    if col is None or col not in df.columns:
        return np.zeros(len(df), dtype=object)
    return df[col].fillna("").astype(str).to_numpy(dtype=object)


def _largest_remainder(exact: np.ndarray, total: int) -> np.ndarray:
    """Integer quotas summing to ``total``, each the floor of ``exact`` or one more."""
    quota = np.floor(exact).astype(np.int64)
    short = total - int(quota.sum())
    # Stable sort: equal remainders go to the earlier (alphabetically smaller) class.
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    return quota


def _groups(df: pd.DataFrame, group_cols: Sequence[str]) -> np.ndarray:
    """Group number per row: rows sharing any non-empty value of ``group_cols`` are joined."""
    parent = list(range(len(df)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for col in group_cols:
        if col not in df.columns:
            continue
        first: dict[str, int] = {}
        for i, value in enumerate(df[col].to_numpy(dtype=object)):
            key = "" if pd.isna(value) else str(value).strip()
            if key:
                parent[find(i)] = find(first.setdefault(key, i))
    return np.asarray([find(i) for i in range(len(df))], dtype=np.int64)


def _assign(
    df: pd.DataFrame,
    fractions: Sequence[float],
    seed: int,
    stratify: str | None,
    group_cols: Sequence[str],
) -> np.ndarray:
    """Fold number per row: a greedy, stratified, group-respecting partition.

    Groups are placed largest first (ties in a seeded random order), each into the fold whose
    share of its target is lowest for the group's classes. Filling every fold at the same
    relative pace is what gets a rare class into small folds: its first groups go one per fold.
    """
    _, group = np.unique(_groups(df, group_cols), return_inverse=True)
    _, label = np.unique(_labels(df, stratify), return_inverse=True)
    counts = np.zeros((group.max(initial=-1) + 1, label.max(initial=-1) + 1))
    np.add.at(counts, (group, label), 1)
    target = np.outer(fractions, counts.sum(axis=0))
    filled = np.zeros_like(target)
    order = np.random.default_rng(seed).permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    fold_of_group = np.empty(len(counts), dtype=np.int64)
    for g in order:
        deficit = (target - filled) / np.maximum(target, 1e-12)
        best = int(np.argmax(deficit @ counts[g]))
        fold_of_group[g] = best
        filled[best] += counts[g]
    return fold_of_group[group]
