"""Train K SinGAN-Seg models in one process at once.

N images are N independent models. Models whose pyramids have the same sizes and the same
number of finished scales are stacked K at a time (grouped convolutions, see ``networks``) and
trained together by :func:`train_scale`: small per-scale convolutions fill the device, and the
result equals training them one by one (same seeds) up to floating-point tolerance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from components.config import SinganConfig
from components.generators.singan_seg import networks
from components.generators.singan_seg.checkpoint import SinganModel
from components.generators.singan_seg.pyramid import real_pyramid, to_tensor
from components.generators.singan_seg.train import LogFn, ScaleResult, Trained, train_scale
from components.runtime import Runtime

ScaleDoneFn = Callable[[list[SinganModel]], None]
"""``on_scale_done(models)``: the group's models after a finished scale (checkpoint them)."""


def groups(models: Sequence[SinganModel], k: int) -> list[list[int]]:
    """Indices of ``models`` in groups of at most ``k`` that can be trained together."""
    buckets: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for i, m in enumerate(models):
        if not m.complete:
            buckets[(m.pyramid.sizes, m.finished)].append(i)
    return [idx[j : j + k] for idx in buckets.values() for j in range(0, len(idx), k)]


def stack(models: Sequence[SinganModel]) -> Trained:
    """The finished scales of ``models`` (same sizes and progress) as one K-stacked Trained."""
    first = models[0]
    return Trained(
        sizes=first.pyramid.sizes[: first.finished],
        g_states=tuple(
            networks.stack_states([m.g_states[n] for m in models]) for n in range(first.finished)
        ),
        d_states=tuple(
            networks.stack_states([m.d_states[n] for m in models]) for n in range(first.finished)
        ),
        noise_amps=tuple(
            torch.tensor([m.noise_amps[n] for m in models]) for n in range(first.finished)
        ),
        z_rec=torch.stack([m.z_rec for m in models]) if first.finished else None,
    )


def append_scale(models: Sequence[SinganModel], result: ScaleResult) -> list[SinganModel]:
    """Each model with its share of a freshly trained (stacked) scale appended."""
    k = len(models)
    gs = networks.unstack_state(result.g_state, k)
    ds = networks.unstack_state(result.d_state, k)
    return [
        replace(
            m,
            g_states=(*m.g_states, gs[i]),
            d_states=(*m.d_states, ds[i]),
            noise_amps=(*m.noise_amps, float(result.noise_amp[i])),
            rec_rmse=(*m.rec_rmse, float(result.rec_rmse[i])),
            z_rec=m.z_rec if result.z_rec is None else result.z_rec[i].clone(),
        )
        for i, m in enumerate(models)
    ]


def train_group(
    cfg: SinganConfig,
    models: Sequence[SinganModel],
    runtime: Runtime,
    on_scale_done: ScaleDoneFn | None = None,
    on_log: Callable[[int], LogFn | None] | None = None,
) -> list[SinganModel]:
    """Train the unfinished scales of ``models`` together (same pyramid and progress).

    ``on_log(scale)`` returns the per-iteration log callback for that scale (or None).
    """
    models = list(models)
    pyramid = models[0].pyramid
    real = torch.cat([to_tensor(m.image, m.mask) for m in models])
    reals = real_pyramid(real, pyramid)
    done = stack(models)
    seeds = [m.seed for m in models]
    for n in range(done.num_scales, pyramid.num_scales):
        size = pyramid.sizes[n]
        log = on_log(n) if on_log is not None else None
        result = train_scale(cfg, reals[n].to(runtime.device), size, done, seeds, runtime, log)
        done = result.extend(done, size)
        models = append_scale(models, result)
        if on_scale_done is not None:
            on_scale_done(models)
    return models
