"""Fast mode: a SinGAN-Seg pyramid trained the ConSinGAN way (Hinz et al. 2021), K at once.

What changes against the original mode (``train.train_scale``), and why it is faster:
- fewer stages (``fast_stages``, 6) on ConSinGAN's pyramid (``pyramid.consingan_pyramid``): at
  250 px the finest stages keep 64 channels where the original's 9th scale has 128, a quarter of
  the arithmetic at the scale that costs three quarters of the original's time;
- the ``fast_depth`` finest stages are trained together, end to end: stage n at ``lr_g``, the
  one below at ``lr_g * fast_lr_scale``, the next at ``* fast_lr_scale**2`` (ConSinGAN's
  learning-rate scaling): lower stages keep adapting to what the new stage needs, so each stage
  needs fewer iterations (``fast_niter``);
- one fake per iteration, computed once with gradients, serves all D steps and the G update,
  and the G update is one backward followed by ``g_steps`` Adam steps, as ConSinGAN does.

What stays: the per-scale generator and discriminator, the losses (WGAN-GP, reconstruction with
a fixed z* at the coarsest scale), the noise amplitude rule, per-model seeds and K stacking. The
result is the same model format, so sampling, checkpoints and resume are shared with the
original mode; a stage's checkpoint holds the retrained lower stages too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from components.config import SinganConfig
from components.generators.singan_seg import networks
from components.generators.singan_seg.pyramid import upsample
from components.generators.singan_seg.train import (
    CHANNELS,
    LogFn,
    ScaleResult,
    Trained,
    _draw,
    _flat,
    _frozen_nets,
    _per_channel,
    _per_model_mean,
    cpu_state,
    gradient_penalty,
    log_losses,
    new_nets,
    noise_map,
    run_scales,
    scale_seed,
    schedulers,
)
from components.runtime import Runtime


def through(
    nets: Sequence[nn.Module],
    amps: Sequence[torch.Tensor],
    noises: Sequence[torch.Tensor | None],
    sizes: Sequence[tuple[int, int]],
    x: torch.Tensor,
) -> torch.Tensor:
    """Run ``x`` (the image entering ``nets[0]``'s scale) up through trainable scales.

    Like :func:`train.run_scales`, but ends with the last net's own output (not upsampled) and
    keeps the graph, so gradients reach every net of the chain.
    """
    out = x
    for i, (net, amp, z) in enumerate(zip(nets, amps, noises, strict=True)):
        if i:
            x = upsample(out.float(), sizes[i])
        out = net(x if z is None else amp * z + x, x)
    return out.float()


def _trained_lower(
    cfg: SinganConfig, done: Trained, lo: int, k: int, runtime: Runtime
) -> list[nn.Module]:
    """The finished generators of scales ``lo..`` in training mode (they keep learning)."""
    nets = []
    for scale in range(lo, done.num_scales):
        net = networks.build(
            "G", CHANNELS, networks.nfc_at(cfg, scale), cfg.num_layer, k, runtime.device
        )
        net.load_state_dict(done.g_states[scale])
        nets.append(net.train().to(memory_format=runtime.memory_format))
    return nets


def train_stage(
    cfg: SinganConfig,
    real: torch.Tensor,
    size: tuple[int, int],
    done: Trained,
    seeds: Sequence[int],
    runtime: Runtime,
    on_log: LogFn | None = None,
) -> ScaleResult:
    """Train stage ``done.num_scales`` and retrain the ``fast_depth - 1`` stages below it.

    Arguments and result as :func:`train.train_scale`; ``ScaleResult.lower_g_states`` holds the
    retrained lower stages' generators, which replace theirs.
    """
    k, n, dev, fmt = len(seeds), done.num_scales, runtime.device, runtime.memory_format
    depth = min(cfg.fast_depth, n + 1)
    lo = n + 1 - depth  # scales below lo stay frozen
    sizes = (*done.sizes, size)
    netG, netD = new_nets(cfg, done, seeds, runtime)
    chain = [*_trained_lower(cfg, done, lo, k, runtime), netG]
    # ConSinGAN: the newest stage at lr_g, each stage below at fast_lr_scale times the next.
    opt_g = torch.optim.Adam(
        [
            {"params": net.parameters(), "lr": cfg.lr_g * cfg.fast_lr_scale ** (depth - 1 - i)}
            for i, net in enumerate(chain)
        ],
        betas=(cfg.beta1, cfg.beta2),
    )
    opt_d = torch.optim.Adam(netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    scheds = schedulers(cfg, cfg.fast_niter, opt_g, opt_d)

    gens = [torch.Generator(device=dev).manual_seed(scale_seed(s, n, 1)) for s in seeds]
    real = _flat(real.to(dev), k).contiguous(memory_format=fmt)
    frozen = _frozen_nets(cfg, done, k, runtime, upto=lo)
    amps = [_per_channel(a.to(dev), CHANNELS) for a in done.noise_amps]
    shapes = [(1 if i == 0 else CHANNELS, h, w) for i, (h, w) in enumerate(sizes)]

    with torch.no_grad(), runtime.autocast():
        z_rec = noise_map(_draw(gens, shapes[:1], dev)[0]) if n == 0 else _flat(done.z_rec, k)
        z_rec = z_rec.to(dev)
        # The frozen part of the reconstruction path is fixed for the stage: computed once.
        rec_base = (
            run_scales(frozen, amps[:lo], sizes[:lo], [z_rec] + [None] * (lo - 1), sizes[lo])
            if lo
            else torch.zeros_like(z_rec)
        )
        rec_noises = [z_rec if lo == 0 else None] + [None] * (depth - 1)
        if n == 0:
            amp = torch.ones(k, device=dev)
        else:
            rec_prev = upsample(
                through(chain[:-1], amps[lo:], rec_noises[:-1], sizes[lo:n], rec_base), size
            )
            amp = cfg.noise_amp_init * _per_model_mean((real - rec_prev) ** 2, k).sqrt()
    chain_amps = [*amps[lo:], _per_channel(amp, CHANNELS)]
    rec_base = rec_base.contiguous(memory_format=fmt)

    for it in range(cfg.fast_niter):
        *maps, gp_draw = _draw(gens, [*shapes, (1, 1, cfg.d_steps)], dev)
        zs = [noise_map(t) for t in maps]
        alphas = 0.5 * (1 + torch.erf(gp_draw.reshape(k, cfg.d_steps) / math.sqrt(2)))
        with torch.no_grad(), runtime.autocast():
            base = (
                run_scales(frozen, amps[:lo], sizes[:lo], zs[:lo], sizes[lo])
                if lo
                else torch.zeros_like(zs[0])
            ).contiguous(memory_format=fmt)
        # One fake per iteration (G does not change during the D steps), with its graph for G.
        with runtime.autocast():
            fake = through(chain, chain_amps, zs[lo:], sizes[lo:], base)
        netD.requires_grad_(True)
        for j in range(cfg.d_steps):
            with runtime.autocast():
                err_real = -_per_model_mean(netD(real), k)
                err_fake = _per_model_mean(netD(fake.detach()), k)
                gp = gradient_penalty(netD, real, fake.detach(), alphas[:, j], k)
            err_d = err_real + err_fake + cfg.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            err_d.sum().backward()
            opt_d.step()

        netD.requires_grad_(False)
        with runtime.autocast():
            err_g = -_per_model_mean(netD(fake), k)
            rec = through(chain, chain_amps, rec_noises, sizes[lo:], rec_base)
            rec_loss = cfg.rec_weight * _per_model_mean((rec - real) ** 2, k)
        opt_g.zero_grad(set_to_none=True)
        (err_g + rec_loss).sum().backward()
        # ConSinGAN's G update: one backward, g_steps Adam steps on those gradients.
        for _ in range(cfg.g_steps):
            opt_g.step()
        for sched in scheds:
            sched.step()
        log_losses(on_log, it, cfg.fast_niter, cfg.log_every, errD=err_d, errG=err_g, rec=rec_loss)

    with torch.no_grad(), runtime.autocast():
        for net in chain:
            net.eval()
        rec = through(chain, chain_amps, rec_noises, sizes[lo:], rec_base)
    rec_rmse = _per_model_mean((rec - real) ** 2, k).sqrt()
    return ScaleResult(
        g_state=cpu_state(netG),
        d_state=cpu_state(netD),
        noise_amp=amp.cpu(),
        z_rec=z_rec.reshape(k, CHANNELS, *size).cpu() if n == 0 else None,
        rec_rmse=rec_rmse.cpu(),
        lower_g_states=tuple(cpu_state(net) for net in chain[:-1]),
    )
