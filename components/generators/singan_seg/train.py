"""Training of one SinGAN scale, for K independent models at once (K = 1: a single model).

:func:`train_scale` is pure: the finished scales, the real image at this scale and the models'
seeds go in; new state_dicts, the noise amplitude and the reconstruction error come out.
Checkpoints and metrics are the caller's business (``on_log`` callback, returned values).

The algorithm is the original's ``train_single_scale`` with these deliberate differences:
- the coarsest scale's reconstruction noise z* is drawn once and kept fixed, as the paper says
  (the original code redraws it every iteration, a known bug);
- the generator steps recompute the fake with the current weights (the original backpropagates
  through a graph whose weights ``optimizerG.step`` has changed in place; PyTorch now refuses);
- the discriminator gets no gradients during generator steps (it is not stepped there anyway);
- with ``g_update: original`` (the default) G is updated once per iteration, as SinGAN-Seg's
  code does: its ``Gsteps`` passes are identical (grads zeroed in each, one step after the
  loop), so one pass is computed; ``g_update: singan`` makes them g_steps real updates on
  freshly computed fakes, as the SinGAN paper describes.

Work the loop would otherwise do twice, removed without changing the math:
- the fake of the last discriminator step is computed with gradients and is the first generator
  step's fake (same weights, same input; SinGAN recomputes it); BatchNorm's running
  statistics are updated as by the identical forwards one stands for (:func:`counts_as`);
- the frozen scales' random path of all discriminator steps runs as one batch (eval mode:
  batch-independent), and their reconstruction path once per scale.

Every model draws its randomness from its own generators, seeded by (model seed, scale), and
every loss is reduced per model before the sum that is backpropagated, so model k's gradients
depend only on model k: K models trained together equal K trained one by one (same seeds).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from components.config import SinganConfig
from components.generators.singan_seg import networks
from components.generators.singan_seg.pyramid import upsample
from components.runtime import Runtime

CHANNELS = 4
"""RGB + mask, all in [-1, 1]."""

LogFn = Callable[[int, dict[str, torch.Tensor]], None]
"""``on_log(iteration, {"errD": [K], "errG": [K], "rec": [K]})``; may sync with the device."""


@dataclass(frozen=True)
class Trained:
    """The finished scales of K stacked models (state_dicts stacked along dim 0)."""

    sizes: tuple[tuple[int, int], ...] = ()
    g_states: tuple[dict[str, torch.Tensor], ...] = ()
    d_states: tuple[dict[str, torch.Tensor], ...] = ()
    noise_amps: tuple[torch.Tensor, ...] = ()
    """Per scale, one amplitude per model (K,)."""
    z_rec: torch.Tensor | None = None
    """The fixed reconstruction noise of the coarsest scale, K x C x H0 x W0."""

    @property
    def num_scales(self) -> int:
        return len(self.g_states)


@dataclass(frozen=True)
class ScaleResult:
    """What training one scale produced, for K models."""

    g_state: dict[str, torch.Tensor]
    d_state: dict[str, torch.Tensor]
    noise_amp: torch.Tensor
    z_rec: torch.Tensor | None
    rec_rmse: torch.Tensor
    """Per model, RMSE of the reconstruction at this scale (in [-1, 1] units)."""
    lower_g_states: tuple[dict[str, torch.Tensor], ...] = ()
    """Fast mode: the retrained generators of the scales just below, replacing theirs."""

    def extend(self, done: Trained, size: tuple[int, int]) -> Trained:
        """``done`` with this scale appended (and the retrained lower scales replaced)."""
        kept = done.g_states[: done.num_scales - len(self.lower_g_states)]
        return Trained(
            sizes=(*done.sizes, size),
            g_states=(*kept, *self.lower_g_states, self.g_state),
            d_states=(*done.d_states, self.d_state),
            noise_amps=(*done.noise_amps, self.noise_amp),
            z_rec=done.z_rec if self.z_rec is None else self.z_rec,
        )


def scale_seed(seed: int, scale: int, stream: int) -> int:
    """Seed of one model's random stream (0: weight init, 1: noise) at one scale.

    Derived, not carried along, so a run restarted at scale n draws what an uninterrupted one
    would have.
    """
    return (seed * 1_000_003 + scale * 7 + stream) % (2**63)


def _flat(x: torch.Tensor, k: int) -> torch.Tensor:
    """K x C x H x W (one image per model) -> 1 x (K*C) x H x W (the grouped nets' layout)."""
    return x.reshape(1, k * x.shape[1], *x.shape[2:])


def _per_model_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each model's block of a 1 x (K*c) x H x W tensor -> (K,), in fp32."""
    return x.float().reshape(k, -1).mean(1)


def _per_channel(v: torch.Tensor, channels: int) -> torch.Tensor:
    """(K,) per-model scalars -> 1 x (K*channels) x 1 x 1, to scale a grouped tensor."""
    return v.repeat_interleave(channels).view(1, -1, 1, 1)


def _draw(
    gens: Sequence[torch.Generator], shapes: Sequence[tuple[int, int, int]], device: torch.device
) -> list[torch.Tensor]:
    """One standard normal K x c x h x w tensor per shape (c, h, w), model k from ``gens[k]``.

    One draw per model per call (not per tensor) keeps the inner loop's kernel launches at K.
    """
    k = len(gens)
    counts = [c * h * w for c, h, w in shapes]
    flat = torch.stack([torch.randn(sum(counts), generator=g, device=device) for g in gens])
    return [
        part.reshape(k, *shape)
        for part, shape in zip(flat.split(counts, dim=1), shapes, strict=True)
    ]


def noise_map(z: torch.Tensor) -> torch.Tensor:
    """K x c x h x w noise -> 1 x (K*CHANNELS) x h x w; c = 1 is broadcast to all channels,
    as the original's coarsest-scale noise."""
    k, _, h, w = z.shape
    return _flat(z.expand(k, CHANNELS, h, w), k)


def _frozen_nets(
    cfg: SinganConfig, done: Trained, k: int, runtime: Runtime, upto: int | None = None
) -> list[nn.Module]:
    """The finished generators below scale ``upto`` (all by default), frozen in eval mode."""
    nets = []
    for scale, state in enumerate(done.g_states[:upto]):
        net = networks.build(
            "G", CHANNELS, networks.nfc_at(cfg, scale), cfg.num_layer, k, runtime.device
        )
        net.load_state_dict(state)
        # eval: the original freezes finished scales with .eval(), so BatchNorm uses running stats.
        nets.append(net.eval().requires_grad_(False).to(memory_format=runtime.memory_format))
    return nets


def run_scales(
    nets: Sequence[nn.Module],
    amps: Sequence[torch.Tensor],
    sizes: Sequence[tuple[int, int]],
    noises: Sequence[torch.Tensor | None],
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Pass an image up through frozen scales (the original's ``draw_concat``).

    ``noises[i]`` is scale i's noise (None: zero noise, the reconstruction path above scale 0);
    ``amps[i]`` its amplitude broadcastable to it. Returns the last output upsampled to
    ``out_size``, the ``prev`` image of the next scale. Shapes: 1 x (K*C) x h x w, or a batch.
    """
    if noises[0] is None:
        raise ValueError("run_scales: the coarsest scale always has a noise map")
    x = torch.zeros_like(noises[0])
    for net, amp, z, nxt in zip(nets, amps, noises, [*sizes[1:], out_size], strict=True):
        x = upsample(net(x if z is None else amp * z + x, x).float(), nxt)
    return x


@contextlib.contextmanager
def counts_as(net: nn.Module, n: int) -> Iterator[None]:
    """Forwards inside update BatchNorm's running statistics as ``n`` identical forwards would.

    n updates with the same batch statistic m give (1-a)^n r + (1 - (1-a)^n) m: one update at
    momentum 1 - (1-a)^n. Used where one forward stands for n (a reused fake, a repeated pass).
    """
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d) and m.training]
    old = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1 - (1 - m.momentum) ** n
    try:
        yield
    finally:
        for m, a in zip(norms, old, strict=True):
            m.momentum = a
            m.num_batches_tracked += n - 1


def random_prevs(
    frozen: Sequence[nn.Module],
    amps: Sequence[torch.Tensor],
    sizes: Sequence[tuple[int, int]],
    maps: Sequence[torch.Tensor],
    out_size: tuple[int, int],
    n: int,
) -> torch.Tensor:
    """``n`` random passes through the frozen scales as one batch: n x (K*C) x H x W.

    ``maps`` holds n noise maps per frozen scale, pass-major (pass j's maps are
    ``maps[j*S:(j+1)*S]``, S = len(frozen)). Frozen nets are in eval mode, so a batch of n equals
    n separate passes.
    """
    s = len(frozen)
    noises = [torch.cat([maps[j * s + i] for j in range(n)]) for i in range(s)]
    return run_scales(frozen, amps, sizes, noises, out_size)


def gradient_penalty(
    netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor, k: int
) -> torch.Tensor:
    """WGAN-GP per model (K,), unweighted, as the original's ``calc_gradient_penalty``.

    The original takes the gradient norm over channels per pixel and averages over pixels; kept.
    """
    a = _per_channel(alpha, CHANNELS)
    interp = (a * real + (1 - a) * fake).requires_grad_(True)
    out = netD(interp)
    (grad,) = torch.autograd.grad(out.float().sum(), interp, create_graph=True)
    norms = grad.float().reshape(k, CHANNELS, *grad.shape[2:]).norm(2, dim=1)
    return ((norms - 1) ** 2).reshape(k, -1).mean(1)


def _start_states(
    cfg: SinganConfig, scale: int, done: Trained, seeds: Sequence[int]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Where scale ``scale`` starts: the previous scale's weights when widths match (original)."""
    nfc = networks.nfc_at(cfg, scale)
    if scale > 0 and networks.nfc_at(cfg, scale - 1) == nfc:
        return done.g_states[-1], done.d_states[-1]
    gens = [torch.Generator().manual_seed(scale_seed(s, scale, 0)) for s in seeds]
    g = networks.stack_states(
        [networks.fresh_state("G", CHANNELS, nfc, cfg.num_layer, gen) for gen in gens]
    )
    d = networks.stack_states(
        [networks.fresh_state("D", CHANNELS, nfc, cfg.num_layer, gen) for gen in gens]
    )
    return g, d


def new_nets(
    cfg: SinganConfig, done: Trained, seeds: Sequence[int], runtime: Runtime
) -> tuple[nn.Module, nn.Module]:
    """Scale ``done.num_scales``'s G and D for K models, initialized, in training mode."""
    k, scale, fmt = len(seeds), done.num_scales, runtime.memory_format
    nfc = networks.nfc_at(cfg, scale)
    netG = networks.build("G", CHANNELS, nfc, cfg.num_layer, k, runtime.device)
    netD = networks.build("D", CHANNELS, nfc, cfg.num_layer, k, runtime.device)
    g_state, d_state = _start_states(cfg, scale, done, seeds)
    netG.load_state_dict(g_state)
    netD.load_state_dict(d_state)
    return netG.train().to(memory_format=fmt), netD.train().to(memory_format=fmt)


def schedulers(
    cfg: SinganConfig, niter: int, *opts: torch.optim.Optimizer
) -> list[torch.optim.lr_scheduler.MultiStepLR]:
    """One lr decay by ``lr_gamma`` at ``lr_decay_at`` of the scale's iterations, per optimizer."""
    milestone = [int(cfg.lr_decay_at * niter)]
    return [torch.optim.lr_scheduler.MultiStepLR(o, milestone, gamma=cfg.lr_gamma) for o in opts]


def cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}


def log_losses(
    on_log: LogFn | None, it: int, niter: int, every: int, **losses: torch.Tensor
) -> None:
    """Call ``on_log`` every ``every`` iterations and at the last one (``it`` counts from 0)."""
    if on_log is not None and ((it + 1) % every == 0 or it + 1 == niter):
        on_log(it + 1, {name: v.detach() for name, v in losses.items()})


def train_scale(
    cfg: SinganConfig,
    real: torch.Tensor,
    size: tuple[int, int],
    done: Trained,
    seeds: Sequence[int],
    runtime: Runtime,
    on_log: LogFn | None = None,
) -> ScaleResult:
    """Train scale ``done.num_scales`` of K models (K = ``len(seeds)``).

    Args:
        cfg: the SinGAN settings.
        real: the K real images at this scale, K x 4 x H x W in [-1, 1], on the device.
        size: (H, W) of this scale.
        done: the K models' finished scales (empty for the coarsest).
        seeds: one seed per model; everything random about model k follows from seeds[k].
        runtime: device, autocast and memory format.
        on_log: called every ``cfg.log_every`` iterations and at the last one.

    Returns:
        The new scale's stacked G and D state_dicts (on the CPU), noise amplitudes,
        reconstruction noise (coarsest scale only) and reconstruction RMSE.
    """
    k, scale, dev, fmt = len(seeds), done.num_scales, runtime.device, runtime.memory_format
    netG, netD = new_nets(cfg, done, seeds, runtime)
    opt_g = torch.optim.Adam(netG.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    scheds = schedulers(cfg, cfg.niter, opt_g, opt_d)

    gens = [torch.Generator(device=dev).manual_seed(scale_seed(s, scale, 1)) for s in seeds]
    real = _flat(real.to(dev), k).contiguous(memory_format=fmt)
    frozen = _frozen_nets(cfg, done, k, runtime)
    amps_before = [_per_channel(a.to(dev), CHANNELS) for a in done.noise_amps]
    # Noise shapes: the coarsest scale's maps have one channel broadcast to all four.
    shapes = [(1 if i == 0 else CHANNELS, h, w) for i, (h, w) in enumerate([*done.sizes, size])]

    with torch.no_grad(), runtime.autocast():
        if scale == 0:
            z_rec = noise_map(_draw(gens, shapes[:1], dev)[0])
            rec_prev = torch.zeros_like(real)
            amp = torch.ones(k, device=dev)
        else:
            z_rec = _flat(done.z_rec.to(dev), k)
            rec_noise = [z_rec] + [None] * (scale - 1)
            # Fixed once the previous scales are frozen: computed once per scale, not per step.
            rec_prev = run_scales(frozen, amps_before, done.sizes, rec_noise, size)
            amp = cfg.noise_amp_init * _per_model_mean((real - rec_prev) ** 2, k).sqrt()
    amp_c = _per_channel(amp, CHANNELS)
    # The reconstruction input: amp * z* + 0 at the coarsest scale (amp = 1 there), else
    # 0 * noise + the upsampled reconstruction of the scales below.
    rec_in = (z_rec if scale == 0 else rec_prev).contiguous(memory_format=fmt)
    rec_prev = rec_prev.contiguous(memory_format=fmt)

    # Per iteration: this scale's noise, fresh noise through the frozen scales for every D
    # step (the original's draw_concat('rand') per D step) and one GP mix factor per D step.
    step_shapes = shapes[-1:] + shapes[:-1] * cfg.d_steps + [(1, 1, cfg.d_steps)]
    singan = cfg.g_update == "singan"
    for it in range(cfg.niter):
        *maps, gp_draw = _draw(gens, step_shapes, dev)
        z, *rest = (noise_map(t) for t in maps)
        # A normal pushed through its CDF is uniform: the GP mix factors ride on the same draw.
        alphas = 0.5 * (1 + torch.erf(gp_draw.reshape(k, cfg.d_steps) / math.sqrt(2)))
        with torch.no_grad(), runtime.autocast():
            prevs = (
                random_prevs(frozen, amps_before, done.sizes, rest, size, cfg.d_steps)
                if scale
                else torch.zeros(cfg.d_steps, *real.shape[1:], device=dev)
            ).contiguous(memory_format=fmt)
        netD.requires_grad_(True)
        for j in range(cfg.d_steps):
            last = j == cfg.d_steps - 1
            prev = prevs[j : j + 1]
            x = amp_c * z + prev
            # The last D step's fake keeps its graph: it is the first G step's fake (SinGAN
            # computes that fake again; SinGAN-Seg reuses it too).
            with (
                torch.set_grad_enabled(last),
                runtime.autocast(),
                counts_as(netG, 2 if last and singan else 1),
            ):
                fake = netG(x, prev)
            with runtime.autocast():
                err_real = -_per_model_mean(netD(real), k)
                err_fake = _per_model_mean(netD(fake.detach()), k)
                gp = gradient_penalty(netD, real, fake.detach().float(), alphas[:, j], k)
            err_d = err_real + err_fake + cfg.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            err_d.sum().backward()
            opt_d.step()

        netD.requires_grad_(False)
        # SinGAN-Seg's g_steps passes repeat one computation (same weights, same fake, grads
        # zeroed each pass, one step after the loop): done once. SinGAN's are real steps.
        for step in range(cfg.g_steps if singan else 1):
            with runtime.autocast():
                err_g = -_per_model_mean(netD(fake if step == 0 else netG(x, prev)), k)
                with counts_as(netG, 1 if singan else cfg.g_steps):
                    rec = netG(rec_in, rec_prev)
                rec_loss = cfg.rec_weight * _per_model_mean((rec.float() - real) ** 2, k)
            opt_g.zero_grad(set_to_none=True)
            (err_g + rec_loss).sum().backward()
            opt_g.step()
        for sched in scheds:
            sched.step()
        log_losses(on_log, it, cfg.niter, cfg.log_every, errD=err_d, errG=err_g, rec=rec_loss)

    with torch.no_grad(), runtime.autocast():
        netG.eval()
        rec = netG(rec_in, rec_prev).float()
    rec_rmse = _per_model_mean((rec - real) ** 2, k).sqrt()
    return ScaleResult(
        g_state=cpu_state(netG),
        d_state=cpu_state(netD),
        noise_amp=amp.cpu(),
        z_rec=z_rec.reshape(k, CHANNELS, *size).cpu() if scale == 0 else None,
        rec_rmse=rec_rmse.cpu(),
    )
