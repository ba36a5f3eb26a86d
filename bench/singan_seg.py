"""SinGAN-Seg training speed: one model vs K models trained together; precision and layout.

On the same polyp-like image(s) and settings, for each profile of params.yaml (its `singan`
settings: demo, finest side 64 px; full, 250 px and the original's defaults) it trains the whole pyramid with ``--iters`` iterations
per scale and prints, per scale, seconds per iteration for one model and for K models trained
together (K = 1, 4, 8 by default), then models x iterations per second over the pyramid and
``speedup: X.XX``, the throughput of the largest K against training those K one after another
(K times the K=1 time). The first iteration of each scale (setup, allocator warm-up) is not
timed, so ``--iters`` must be at least 2; it is about per-iteration time, so a few iterations
per scale suffice (the full profile defaults to 2).

It also trains one model with bf16 autocast and/or channels_last and prints seconds per
iteration and the final (finest-scale) reconstruction RMSE beside fp32/contiguous, so a user
sees what speed costs in quality (raise ``--iters`` for a meaningful RMSE).

Goal on the CPU: demo profile, K=8 together >= 2x the throughput of 8 one after another.

Expected on a GPU (not measured here; reasoning): an iteration is ~300 small kernels (3 D steps
with a gradient penalty's double backward, 3 G steps, the frozen scales' random path), and at
25-250 px with 32-128 channels each conv is a few MFLOP to ~1 GFLOP, microseconds of an H100's
time: one model is bound by launch latency and Python (~10-20 ms per iteration at any scale of
the demo profile). K stacked models issue the same kernels with K times the work, so until the
convs become compute-bound the time per iteration barely grows: expect roughly K x throughput
at the small scales (>= 5x for K=8 on the demo profile) and 2-4x at 150-250 px, where grouped
convs start to fill the device; bf16 + channels_last helps only at the largest scales.

    .venv/bin/python bench/singan_seg.py [--profiles demo full] [--iters 10] [--full-iters 2]
        [--ks 1 4 8] [--device auto] [--threads N] [--image-size PX] [--no-variants]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import SinganConfig, load_config
from components.generators.singan_seg.batched import train_group
from components.generators.singan_seg.checkpoint import SinganModel, training_settings
from components.generators.singan_seg.pyramid import pyramid_for
from components.runtime import Runtime, make_runtime

PROFILES = ("demo", "full")


def phantom(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A polyp-like image (bright blob on a reddish gradient) and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    cy, cx, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.12, 0.25)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.uint8)
    base = np.stack([150 + 60 * xx, 60 + 40 * yy, 50 + 0 * xx], -1)
    img = base + mask[..., None] * np.array([80, 90, 60]) + rng.normal(0, 6, (size, size, 3))
    return img.clip(0, 255).astype(np.uint8), mask


def models_for(cfg: SinganConfig, size: int, k: int) -> list[SinganModel]:
    out = []
    for i in range(k):
        image, mask = phantom(size, i)
        out.append(
            SinganModel(
                f"bench{i}", i, training_settings(cfg), pyramid_for(size, size, cfg), image, mask
            )
        )
    return out


def timed_pyramid(
    cfg: SinganConfig, models: list[SinganModel], runtime: Runtime
) -> tuple[list[float], float]:
    """Train ``models`` together over the pyramid; per-scale s/iteration (first not timed)
    and the mean final reconstruction RMSE."""
    stamps: dict[int, list[float]] = {}

    def on_log(scale: int):
        def log(it: int, losses: dict[str, torch.Tensor]) -> None:
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            stamps.setdefault(scale, []).append(time.perf_counter())

        return log

    trained = train_group(cfg.model_copy(update={"log_every": 1}), models, runtime, on_log=on_log)
    per_scale = [(s[-1] - s[0]) / (len(s) - 1) for _, s in sorted(stamps.items())]
    return per_scale, float(np.mean([m.rec_rmse[-1] for m in trained]))


def bench_profile(
    name: str, size: int | None, iters: int, ks: list[int], runtime: Runtime, variants: bool
) -> None:
    # The profile's own SinGAN-Seg settings from params.yaml; only the iteration count shrinks.
    cfg = load_config(ROOT / "params.yaml", name).singan
    size = size or cfg.max_size
    cfg = cfg.model_copy(update={"max_size": size, "niter": iters})
    pyr = pyramid_for(size, size, cfg)
    print(
        f"\n== profile {name}: {size}x{size}, {pyr.num_scales} scales, {iters} iterations/scale, "
        f"nfc {cfg.nfc}, {cfg.d_steps} D + {cfg.g_steps} G steps, "
        f"{runtime.describe()}, {torch.get_num_threads()} threads"
    )
    times = {k: timed_pyramid(cfg, models_for(cfg, size, k), runtime)[0] for k in ks}
    print(
        "scale  size      "
        + "".join(f"{f'K={k} s/it':>12}" for k in ks)
        + "".join(f"{f'K={k} s/it/model':>16}" for k in ks)
    )
    for n, (h, w) in enumerate(pyr.sizes):
        row = "".join(f"{times[k][n]:12.4f}" for k in ks) + "".join(
            f"{times[k][n] / k:16.4f}" for k in ks
        )
        print(f"{n:5d}  {h:3d}x{w:<3d}   {row}")
    throughput = {k: k / sum(times[k]) for k in ks}
    print(
        "models x iterations / s (whole pyramid): "
        + ", ".join(f"K={k}: {throughput[k]:.3f}" for k in ks)
    )
    k_max, k_min = max(ks), min(ks)
    print(
        f"speedup: {throughput[k_max] / throughput[k_min]:.2f}  "
        f"(K={k_max} together vs {k_max} trained one after another at K={k_min})"
    )
    if not variants:
        return
    print("one model, precision and memory format (speed vs final reconstruction RMSE):")
    for bf16 in (False, True):
        for cl in (False, True):
            rt = make_runtime(runtime.device.type, "bf16" if bf16 else "fp32", cl)
            per_scale, rmse = timed_pyramid(cfg, models_for(cfg, size, 1), rt)
            print(
                f"  {rt.describe():32s} {sum(per_scale):8.4f} s/it over the pyramid   rec RMSE {rmse:.4f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    ap.add_argument("--iters", type=int, default=10, help="iterations per scale (demo)")
    ap.add_argument("--full-iters", type=int, default=2, help="iterations per scale (full)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8], help="models trained together")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--image-size", type=int, default=None, help="override the profiles' side")
    ap.add_argument("--no-variants", action="store_true", help="skip the bf16/channels_last runs")
    args = ap.parse_args()
    if min(args.iters, args.full_iters) < 2:
        ap.error("--iters and --full-iters must be >= 2 (the first iteration is not timed)")
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = make_runtime(args.device, "fp32", False)
    for name in args.profiles:
        iters = args.iters if name == "demo" else args.full_iters
        bench_profile(name, args.image_size, iters, sorted(args.ks), runtime, not args.no_variants)


if __name__ == "__main__":
    main()
