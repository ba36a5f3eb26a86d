"""Train K SinGAN-Seg models in one process at once.

N images are N independent models. Models whose pyramids have the same sizes and the same
number of finished scales are stacked K at a time (grouped convolutions, see ``networks``) and
trained together by :func:`train_scale` (or, in fast mode, :func:`fast.train_stage`): small
per-scale convolutions fill the device, and the result equals training them one by one (same
seeds) up to floating-point tolerance. How many of a group stack at a given scale, and at what
precision, is the scale's own choice (``schedule``): on a CPU the compute-bound large scales run
one model at a time, in bf16 where the CPU has it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from components.config import SinganConfig
from components.generators.singan_seg import networks, schedule
from components.generators.singan_seg.checkpoint import SinganModel
from components.generators.singan_seg.fast import train_stage
from components.generators.singan_seg.pyramid import real_pyramid, to_tensor
from components.generators.singan_seg.train import LogFn, ScaleResult, Trained, train_scale
from components.runtime import Runtime

ScaleDoneFn = Callable[[list[SinganModel]], None]
"""``on_scale_done(models)``: the group's models after a finished scale (checkpoint them)."""
LogForFn = Callable[[int, range], LogFn | None]
"""``on_log(scale, members)``: the per-iteration log callback for the group's ``members``
(indices into the group) training together at ``scale``, or None."""


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


def _blocks(t: torch.Tensor, k: int) -> torch.Tensor:
    """A stacked tensor as k x (its per-model shape)."""
    return t.reshape(k, t.shape[0] // k, *t.shape[1:])


def _select_state(state: dict[str, torch.Tensor], k: int, part: range) -> dict[str, torch.Tensor]:
    return {
        name: t if t.ndim == 0 else _blocks(t, k)[part.start : part.stop].flatten(0, 1)
        for name, t in state.items()
    }


def select(done: Trained, k: int, part: range) -> Trained:
    """Models ``part`` of K stacked models' finished scales."""
    return Trained(
        sizes=done.sizes,
        g_states=tuple(_select_state(s, k, part) for s in done.g_states),
        d_states=tuple(_select_state(s, k, part) for s in done.d_states),
        noise_amps=tuple(a[part.start : part.stop] for a in done.noise_amps),
        z_rec=None if done.z_rec is None else done.z_rec[part.start : part.stop],
    )


def _cat_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        name: t if t.ndim == 0 else torch.cat([s[name] for s in states])
        for name, t in states[0].items()
    }


def concat(results: Sequence[ScaleResult]) -> ScaleResult:
    """Results of consecutive parts of a group as one stacked result (inverse of splitting)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    return ScaleResult(
        g_state=_cat_states([r.g_state for r in results]),
        d_state=_cat_states([r.d_state for r in results]),
        noise_amp=torch.cat([r.noise_amp for r in results]),
        z_rec=None if first.z_rec is None else torch.cat([r.z_rec for r in results]),
        rec_rmse=torch.cat([r.rec_rmse for r in results]),
        lower_g_states=tuple(
            _cat_states([r.lower_g_states[i] for r in results])
            for i in range(len(first.lower_g_states))
        ),
    )


def append_scale(models: Sequence[SinganModel], result: ScaleResult) -> list[SinganModel]:
    """Each model with its share of a freshly trained (stacked) scale appended, and its
    retrained lower scales (fast mode) replaced."""
    k = len(models)
    gs = networks.unstack_state(result.g_state, k)
    ds = networks.unstack_state(result.d_state, k)
    lower = [networks.unstack_state(s, k) for s in result.lower_g_states]
    return [
        replace(
            m,
            g_states=(
                *m.g_states[: m.finished - len(lower)],
                *(low[i] for low in lower),
                gs[i],
            ),
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
    on_log: LogForFn | None = None,
) -> list[SinganModel]:
    """Train the unfinished scales of ``models`` together (same pyramid and progress).

    At each scale the group trains in parts of ``schedule.models_at`` models, one part after
    another, at ``schedule.runtime_at``'s precision; ``on_log(scale, members)`` gives each
    part's per-iteration log callback.
    """
    models = list(models)
    pyramid = models[0].pyramid
    real = torch.cat([to_tensor(m.image, m.mask) for m in models])
    reals = real_pyramid(real, pyramid)
    done = stack(models)
    seeds = [m.seed for m in models]
    k = len(models)
    step = train_stage if cfg.mode == "fast" else train_scale
    for n in range(done.num_scales, pyramid.num_scales):
        size = pyramid.sizes[n]
        rt = schedule.runtime_at(cfg, runtime, size)
        per = schedule.models_at(cfg, rt, size)
        results = []
        for lo in range(0, k, per):
            part = range(lo, min(lo + per, k))
            log = on_log(n, part) if on_log is not None else None
            sub = done if len(part) == k else select(done, k, part)
            real_part = reals[n][part.start : part.stop].to(rt.device)
            results.append(step(cfg, real_part, size, sub, seeds[lo : part.stop], rt, log))
        result = concat(results)
        done = result.extend(done, size)
        models = append_scale(models, result)
        if on_scale_done is not None:
            on_scale_done(models)
    return models
