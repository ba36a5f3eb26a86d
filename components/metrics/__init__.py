"""Metrics of a synthetic set: how it looks, how its distribution compares, whether it copies.

- :mod:`components.metrics.piqa_metrics`: the five PIQA full-reference metrics (PSNR, SSIM,
  MS-GMSD, MDSI, HaarPSI) on random synthetic/real pairs (``pairwise_quality``).
- :mod:`components.metrics.fid`: FID and KID against the real training split, on Inception-v3
  features (``fid_inception``, ``kid_inception``) and on the domain classifier's features
  (``fid_domain``, ``kid_domain``) (``generative_metrics``).
- :mod:`components.metrics.memorization`: nearest-training-image distances of synthetic images
  against those of real test images (``memorization``); ``pixel_features``, a weight-free space.
- :mod:`components.metrics.precision_recall`: precision, recall, density and coverage on the
  same features as FID (``prdc_metrics``, by the ``prdc`` package).

Import the submodule you need: this package imports nothing itself, so reading the FID code does
not pay for piqa's import (a few seconds) and vice versa.
"""
