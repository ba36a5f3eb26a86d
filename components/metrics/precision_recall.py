"""Precision, recall, density and coverage of a synthetic set (Naeem et al. 2020), by ``prdc``.

FID folds fidelity and diversity into one number; these four keep them apart, on the same
features and the same samples as FID:

- precision: share of synthetic samples inside the real manifold (k-NN balls of real samples):
  realism. recall: share of real samples inside the synthetic manifold: diversity.
- density: like precision, counting how many real balls hold each synthetic sample (robust to
  real outliers, can exceed 1). coverage: share of real samples whose ball holds a synthetic
  one (robust to synthetic outliers).

The computation is the reference implementation, the ``prdc`` package: not rewritten here.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from components.errors import DataError


def prdc_metrics(real: np.ndarray, synthetic: np.ndarray, nearest_k: int) -> dict[str, float]:
    """``precision``, ``recall``, ``density``, ``coverage`` and the ``prdc_k`` used.

    ``nearest_k`` is capped at the smaller set's size minus two (prdc sorts to the k+1-th
    distance, the point itself included).

    Raises:
        DataError: fewer than 2 samples in a set, or feature sets of different widths.
    """
    from prdc import compute_prdc

    real = np.asarray(real, dtype=np.float32)
    synthetic = np.asarray(synthetic, dtype=np.float32)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise DataError(f"PRDC: features must be N x D of one D, got {real.shape} and {synthetic.shape}")
    if min(len(real), len(synthetic)) < 3:
        raise DataError(f"PRDC: need at least 3 samples per set, got {len(real)} and {len(synthetic)}")
    k = max(1, min(int(nearest_k), len(real) - 2, len(synthetic) - 2))
    # compute_prdc prints the set sizes; components never print (the CLI owns the terminal).
    with contextlib.redirect_stdout(io.StringIO()):
        out = compute_prdc(real_features=real, fake_features=synthetic, nearest_k=k)
    return {**{name: float(value) for name, value in out.items()}, "prdc_k": float(k)}
