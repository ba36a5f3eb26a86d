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

``--vs-original``: synthmed against the original SinGAN-Seg code (imported at run time from
``../shared/reference/singan-seg``, see bench/singan_original.py) at the original's settings: a
622x529 4-channel polyp phantom, 9 scales, 32..128 channels, 3 D + 3 G steps. In one process,
alternating (original, then each synthmed variant, ``--rounds`` times), it prints seconds per
iteration by scale and ``speedup vs original: X.XX`` summed over the pyramid, for the levers
one by one: fp32 one model (the loop's own savings), + bf16 autocast at the large scales
(the default on a CPU with native bf16), + K models per scale (per image). Then a short
full-pyramid training (``--rec-iters``, ``--rec-max-size``) of the original and synthmed prints
both final reconstruction errors. ``--fast`` compares the fast mode with the original at small
settings: reconstruction error, SIFID, seconds per image, and ``fast mode: X.XXx fewer seconds
per image to the same reconstruction error``. ``--flops`` counts FLOPs per iteration by scale
(torch.utils.flop_counter's formulas) for docs/performance.md's GPU estimate.

    .venv/bin/python bench/singan_seg.py --vs-original [--iters 2] [--scales N] [--rounds 1]
        [--rec-iters 20] [--rec-max-size 160] [--reference PATH] [--threads N]
    .venv/bin/python bench/singan_seg.py --fast [--fast-max-size 64] [--fast-base-iters 200]
        [--fast-iters 60] [--fast-stages 4]
    .venv/bin/python bench/singan_seg.py --flops
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import singan_original as original
from components.config import SinganConfig, load_config
from components.data.phantoms import phantom as polyp_phantom
from components.generators.singan_seg import networks, schedule
from components.generators.singan_seg.batched import train_group
from components.generators.singan_seg.checkpoint import (
    SinganModel,
    iterations,
    training_settings,
)
from components.generators.singan_seg.model import generate, to_uint8
from components.generators.singan_seg.pyramid import pyramid_for, real_pyramid, to_tensor
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

    trained = train_group(
        cfg.model_copy(update={"log_every": 1}), models, runtime, on_log=lambda n, _: on_log(n)
    )
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


# --- synthmed vs the original -----------------------------------------------------------------

ORIGINAL_HW = (622, 529)
"""The original's measured polyp: 622 x 529, finest scale 250 x 213."""


class _Stop(Exception):
    pass


def polyp(i: int, hw: tuple[int, int] = ORIGINAL_HW) -> tuple[np.ndarray, np.ndarray]:
    """Phantom ``i`` (components/data/phantoms.py) at ``hw``: written square, centre-cropped."""
    h, w = hw
    side = max(h, w)
    image, mask = polyp_phantom(np.random.default_rng([12, i]), side)
    top, left = (side - h) // 2, (side - w) // 2
    return image[top : top + h, left : left + w], mask[top : top + h, left : left + w]


def original_settings(niter: int, max_size: int) -> SinganConfig:
    """synthmed's config at the original's settings (config.py defaults, --nc_z 4 --nc_im 4).

    The original decays the learning rate at iteration 1600 whatever niter is: at a short run
    that is never, so synthmed's decay point moves to the end as well.
    """
    return SinganConfig(
        max_size=max_size, niter=niter, lr_decay_at=min(1.0, 1600 / niter), log_every=niter
    )


@dataclass
class Variant:
    """One synthmed configuration of the comparison."""

    name: str
    cfg: SinganConfig
    k: int


def synthmed_run(
    variant: Variant, runtime: Runtime, scales: int | None, seed: int = 0
) -> tuple[list[float], list[SinganModel]]:
    """Per-scale seconds per iteration per image (the first iteration of a scale not timed,
    as for the original) and the trained models; stops after ``scales`` scales."""
    models = []
    for i in range(variant.k):
        image, mask = polyp(i)
        h, w = image.shape[:2]
        models.append(
            SinganModel(
                f"p{i}",
                seed + i,
                training_settings(variant.cfg),
                pyramid_for(h, w, variant.cfg),
                image,
                mask,
            )
        )
    stamps: dict[int, list[float]] = {}
    out: list[SinganModel] = []

    def on_log(n: int, part: range):
        def log(it: int, losses: dict[str, torch.Tensor]) -> None:
            stamps.setdefault(n, []).append(time.perf_counter())

        return log

    def done(ms: list[SinganModel]) -> None:
        out[:] = ms
        if scales is not None and len(stamps) >= scales:
            raise _Stop

    cfg = variant.cfg.model_copy(update={"log_every": 1})
    try:
        train_group(cfg, models, runtime, on_scale_done=done, on_log=on_log)
    except _Stop:
        pass
    # One log per iteration per part; parts run one after another, each timed on its own.
    per_iter = []
    for n in sorted(stamps):
        t = stamps[n]
        parts = len(t) // iterations(cfg)
        chunks = [t[j * iterations(cfg) : (j + 1) * iterations(cfg)] for j in range(parts)]
        per_iter.append(sum((c[-1] - c[0]) / (len(c) - 1) for c in chunks) / variant.k)
    return per_iter, out


def variants(cfg: SinganConfig, k: int) -> list[Variant]:
    """The levers, added one at a time."""
    fp32 = cfg.model_copy(update={"bf16_from_side": None})
    out = [
        Variant("fp32, 1 model", fp32, 1),
        Variant(f"+ bf16 >= {cfg.bf16_from_side} px (default)", cfg, 1),
    ]
    if k > 1:
        out.append(
            Variant(
                f"+ K={k} per scale (per image)", cfg.model_copy(update={"models_at_once": k}), k
            )
        )
    return out


def vs_original(args: argparse.Namespace, runtime: Runtime) -> None:
    ref = original.import_reference(Path(args.reference))
    cfg = original_settings(args.iters, args.max_size)
    pyr = pyramid_for(*ORIGINAL_HW, cfg)
    n_scales = args.scales or pyr.num_scales
    bf16 = schedule.cpu_has_fast_bf16()
    print(
        f"\n== vs original: {ORIGINAL_HW[0]}x{ORIGINAL_HW[1]} 4-channel phantom, max side "
        f"{args.max_size}, "
        f"{pyr.num_scales} scales ({n_scales} timed), {args.iters} iterations/scale, "
        f"{cfg.d_steps} D + {cfg.g_steps} G steps, {torch.get_num_threads()} threads, "
        f"cpu native bf16: {bf16}; s/iteration per image, first iteration of a scale not timed"
    )
    vs = [
        v
        for i, v in enumerate(variants(cfg, args.k))
        if ("fp32", "default", "k")[i] in args.variants
    ]
    times: dict[str, list[list[float]]] = {"original": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        original.write_input(work, *polyp(0))

        def run_original() -> None:
            run = original.train_original(ref, work, args.iters, args.max_size, 1, n_scales)
            times["original"].append(run.per_iter)
            print(f"  original: {sum(run.per_iter):.3f} s/it summed", flush=True)

        for r in range(args.rounds):
            # The original runs first in even rounds and last in odd ones: with a load that
            # drifts (a shared machine), a fixed order would favour whoever runs later.
            if r % 2 == 0:
                run_original()
            for v in vs:
                # K > 1 only changes the scales that stack: the rest train one model at a time,
                # as the K=1 variant above, so they are not trained again.
                stop = n_scales
                if v.k > 1:
                    stop = min(
                        n_scales,
                        sum(schedule.models_at(v.cfg, runtime, sz) > 1 for sz in pyr.sizes),
                    )
                per_scale, _ = synthmed_run(v, runtime, stop)
                times.setdefault(v.name, []).append(per_scale)
                print(
                    f"  {v.name}: {sum(per_scale):.3f} s/it summed over {stop} scales", flush=True
                )
            if r % 2 == 1:
                run_original()
    table = {name: np.min(np.array(runs), axis=0) for name, runs in times.items()}
    one = [v.name for v in vs if v.k == 1]
    for v in vs:
        if v.k > 1:  # its one-model scales are the last one-model variant's
            got = table[v.name]
            table[v.name] = np.concatenate([got, table[one[-1]][len(got) :]])
    names = list(table)
    print("scale  size      nfc " + "".join(f"{n[:28]:>30}" for n in names))
    for n in range(n_scales):
        h, w = pyr.sizes[n]
        row = "".join(f"{table[name][n]:30.3f}" for name in names)
        print(f"{n:5d}  {h:3d}x{w:<3d}  {networks.nfc_at(cfg, n):4d}{row}")
    total = {name: float(np.sum(t[:n_scales])) for name, t in table.items()}
    print("sum    s/it      " + "".join(f"{total[name]:30.3f}" for name in names))
    for name in names[1:]:
        print(f"  {name:45s} {total['original'] / total[name]:.2f}x the original")
    print(f"speedup vs original: {total['original'] / total[names[-1]]:.2f}")


def rec_check(args: argparse.Namespace, runtime: Runtime) -> None:
    """A short full-pyramid training of both; their final reconstruction RMSE."""
    ref = original.import_reference(Path(args.reference))
    cfg = original_settings(args.rec_iters, args.rec_max_size)
    if args.rec_bf16_from_side is not None:
        cfg = cfg.model_copy(update={"bf16_from_side": args.rec_bf16_from_side})
    pyr = pyramid_for(*ORIGINAL_HW, cfg)
    bf16_scales = sum(
        schedule.runtime_at(cfg, runtime, s).autocast_dtype is not None for s in pyr.sizes
    )
    print(
        f"\n== reconstruction after a short full-pyramid training: max side {args.rec_max_size}, "
        f"{pyr.num_scales} scales, {args.rec_iters} iterations/scale, {args.rec_images} image(s), "
        f"{bf16_scales} scale(s) in bf16; RMSE in [-1, 1] units, each against its own real pyramid"
    )
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rec_images):
            work = Path(tmp) / str(i)
            original.write_input(work, *polyp(i))
            run = original.train_original(ref, work, args.rec_iters, args.rec_max_size, seed=1 + i)
            rows.setdefault("original", []).append(original.rec_rmse(ref, run))
            for v in variants(cfg, 1):
                _, models = synthmed_run(Variant(v.name, v.cfg, 1), runtime, None, seed=i)
                rows.setdefault(v.name, []).append(models[0].rec_rmse[-1])
    orig = float(np.mean(rows["original"]))
    for name, vals in rows.items():
        print(
            f"  {name:45s} rec RMSE {np.mean(vals):.4f}  ({np.mean(vals) / orig:.3f}x the original)"
        )
    default = float(np.mean(rows[variants(cfg, 1)[1].name]))
    print(
        f"reconstruction: original {orig:.4f}, synthmed {default:.4f} ({(default / orig - 1) * 100:+.1f}%)"
    )


# --- fast mode -------------------------------------------------------------------------------


def synthmed_samples(model: SinganModel, n: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(7)
    rgb, _ = to_uint8(generate(model, n, gen, make_runtime("cpu", "fp32", False)))
    return rgb


def fast_vs_original(args: argparse.Namespace, runtime: Runtime) -> None:
    from components.metrics.fid import load_inception
    from components.metrics.sifid import LAYER, sifid

    ref = original.import_reference(Path(args.reference))
    net = load_inception()
    base = original_settings(args.fast_base_iters, args.fast_max_size)
    fast = base.model_copy(
        update={
            "mode": "fast",
            "fast_stages": args.fast_stages,
            "fast_niter": args.fast_iters,
            "lr_decay_at": 0.8,
        }
    )
    p_orig, p_fast = pyramid_for(*ORIGINAL_HW, base), pyramid_for(*ORIGINAL_HW, fast)
    print(
        f"\n== fast mode vs the original: max side {args.fast_max_size}; original "
        f"{p_orig.num_scales} scales x {args.fast_base_iters} iterations, fast "
        f"{p_fast.num_scales} stages x {args.fast_iters} iterations (depth {fast.fast_depth}, "
        f"lr scale {fast.fast_lr_scale}); {args.fast_images} image(s); SIFID at Inception "
        f"{LAYER}, mean over {args.sifid_samples} samples"
    )
    rows: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.fast_images):
            image, mask = polyp(i)
            work = Path(tmp) / str(i)
            original.write_input(work, image, mask)
            run = original.train_original(
                ref, work, args.fast_base_iters, args.fast_max_size, 1 + i
            )
            real = to_uint8(run.reals[-1])[0][0]
            samples = to_uint8(original.finest(ref, run, random=True, n=args.sifid_samples))[0]
            rows.setdefault("original", []).append(
                (sum(run.seconds), original.rec_rmse(ref, run), sifid(net, real, samples))
            )
            for name, cfg in (("synthmed original mode", base), ("synthmed fast mode", fast)):
                start = time.perf_counter()
                _, models = synthmed_run(Variant(name, cfg, 1), runtime, None, seed=i)
                seconds = time.perf_counter() - start
                m = models[0]
                real = to_uint8(real_pyramid(to_tensor(m.image, m.mask), m.pyramid)[-1])[0][0]
                rows.setdefault(name, []).append(
                    (
                        seconds,
                        m.rec_rmse[-1],
                        sifid(net, real, synthmed_samples(m, args.sifid_samples)),
                    )
                )
    means = {name: np.mean(np.array(v), axis=0) for name, v in rows.items()}
    for name, (sec, rec, sif) in means.items():
        print(f"  {name:25s} {sec:9.1f} s/image   rec RMSE {rec:.4f}   SIFID {sif:.3f}")
    o_sec, o_rec, o_sif = means["original"]
    f_sec, f_rec, f_sif = means["synthmed fast mode"]
    if f_rec <= o_rec:
        print(
            f"fast mode: {o_sec / f_sec:.2f}x fewer seconds per image to the same reconstruction error"
        )
    else:
        print(
            f"fast mode: did not reach the original's reconstruction error ({f_rec:.4f} > "
            f"{o_rec:.4f}) at {args.fast_iters} iterations per stage ({o_sec / f_sec:.2f}x fewer seconds)"
        )
    print(
        f"fast mode SIFID {f_sif:.3f} vs the original's {o_sif:.3f} ({'<=' if f_sif <= o_sif else '>'})"
    )


# --- FLOPs -----------------------------------------------------------------------------------


class ConvFlops(TorchDispatchMode):
    """Counts FLOPs with torch.utils.flop_counter's formulas (convolutions, their backward,
    matmuls). FlopCounterMode itself cannot run here: its module hooks refuse the gradient
    penalty's autograd.grad(create_graph=True)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def flops(args: argparse.Namespace, runtime: Runtime) -> None:
    """FLOPs of one training iteration by scale (FlopCounterMode), both modes, one model.

    Convolutions (forward, backward and the gradient penalty's double backward) and matmuls
    are counted; elementwise work (BatchNorm, activations, Adam) is not, and is a small share
    of the FLOPs though not of a CPU's time. One counter runs over a 2-iteration pyramid; the
    difference between its totals after iterations 1 and 2 of a scale is one iteration.
    """
    for mode in ("original", "fast"):
        cfg = original_settings(2, 250).model_copy(
            update={"mode": mode, "fast_niter": 2, "log_every": 1, "bf16_from_side": None}
        )
        pyr = pyramid_for(*ORIGINAL_HW, cfg)
        image, mask = polyp(0)
        model = SinganModel("p0", 0, training_settings(cfg), pyr, image, mask)
        marks: dict[int, list[int]] = {}
        counter = ConvFlops()

        def on_log(n: int, part: range, marks=marks, counter=counter):
            return lambda it, losses: marks.setdefault(n, []).append(counter.total)

        def done(ms: list[SinganModel], limit=args.flops_scales) -> None:
            if limit is not None and ms[0].finished >= limit:
                raise _Stop

        with counter:
            try:
                train_group(cfg, [model], runtime, on_scale_done=done, on_log=on_log)
            except _Stop:
                pass
        per_scale = [marks[n][1] - marks[n][0] for n in sorted(marks)]
        iters = iterations(SinganConfig(mode=mode))
        print(
            f"\n== FLOPs per training iteration, {mode} mode, one model "
            f"({ORIGINAL_HW[0]}x{ORIGINAL_HW[1]} polyp, {pyr.num_scales} scales)"
        )
        for n, f in enumerate(per_scale):
            h, w = pyr.sizes[n]
            print(
                f"  scale {n}  {h:3d}x{w:<3d} nfc {networks.nfc_at(cfg, n):3d}  {f / 1e9:9.1f} GFLOP"
            )
        total = sum(per_scale)
        print(
            f"  sum {total / 1e12:.3f} TFLOP per iteration over the pyramid; at the default "
            f"{iters} iterations/scale: {total * iters / 1e15:.2f} PFLOP per image"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    ap.add_argument(
        "--iters", type=int, default=None, help="iterations per scale (demo: 10, --vs-original: 2)"
    )
    ap.add_argument("--full-iters", type=int, default=2, help="iterations per scale (full)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8], help="models trained together")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--image-size", type=int, default=None, help="override the profiles' side")
    ap.add_argument("--no-variants", action="store_true", help="skip the bf16/channels_last runs")
    ap.add_argument("--vs-original", action="store_true", help="synthmed vs the original code")
    ap.add_argument(
        "--reference", default=str(original.DEFAULT_REFERENCE), help="original's folder"
    )
    ap.add_argument(
        "--scales", type=int, default=None, help="--vs-original: time the first N scales"
    )
    ap.add_argument(
        "--max-size", type=int, default=250, help="--vs-original: finest side (250: the original's)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="--vs-original: rounds, order flipped each (min taken)",
    )
    ap.add_argument("--k", type=int, default=8, help="--vs-original: models per stacked scale")
    ap.add_argument(
        "--variants",
        nargs="+",
        default=["fp32", "default", "k"],
        choices=["fp32", "default", "k"],
        help="--vs-original: fp32 one model; the default (bf16 at large scales); + K per scale",
    )
    ap.add_argument(
        "--rec-iters", type=int, default=20, help="reconstruction check: iterations/scale (0: skip)"
    )
    ap.add_argument(
        "--rec-max-size", type=int, default=160, help="reconstruction check: finest side"
    )
    ap.add_argument("--rec-images", type=int, default=1, help="reconstruction check: images")
    ap.add_argument(
        "--rec-bf16-from-side",
        type=int,
        default=None,
        help="reconstruction check: bf16 from this side (default: the config's; 1: every scale)",
    )
    ap.add_argument(
        "--no-speed", action="store_true", help="--vs-original: only the reconstruction check"
    )
    ap.add_argument("--fast", action="store_true", help="fast mode vs the original")
    ap.add_argument("--fast-max-size", type=int, default=64)
    ap.add_argument(
        "--fast-base-iters", type=int, default=200, help="the original's iterations/scale"
    )
    ap.add_argument("--fast-iters", type=int, default=60, help="fast mode's iterations/stage")
    ap.add_argument("--fast-stages", type=int, default=4)
    ap.add_argument("--fast-images", type=int, default=1)
    ap.add_argument("--sifid-samples", type=int, default=8)
    ap.add_argument("--flops", action="store_true", help="FLOPs per iteration by scale")
    ap.add_argument("--flops-scales", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.vs_original or args.fast or args.flops:
        runtime = make_runtime("cpu" if args.device == "auto" else args.device, "fp32", False)
        args.iters = args.iters or 2
        if args.vs_original:
            if not args.no_speed:
                vs_original(args, runtime)
            if args.rec_iters:
                rec_check(args, runtime)
        if args.fast:
            fast_vs_original(args, runtime)
        if args.flops:
            flops(args, runtime)
        return
    args.iters = args.iters or 10
    if min(args.iters, args.full_iters) < 2:
        ap.error("--iters and --full-iters must be >= 2 (the first iteration is not timed)")
    runtime = make_runtime(args.device, "fp32", False)
    for name in args.profiles:
        iters = args.iters if name == "demo" else args.full_iters
        bench_profile(name, args.image_size, iters, sorted(args.ks), runtime, not args.no_variants)


if __name__ == "__main__":
    main()
