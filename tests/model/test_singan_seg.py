"""SinGAN-Seg: pyramid arithmetic, nets, training, resume, K-at-once, sampling, checkpoints.

Tiny pyramids only (24 px images, 3 scales, 8 channels, a few iterations) on one CPU thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.config import Config, SinganConfig
from components.errors import ConfigError, DataError
from components.generators.singan_seg import networks
from components.generators.singan_seg.batched import train_group
from components.generators.singan_seg.checkpoint import SinganModel, training_settings
from components.generators.singan_seg.model import CHECKPOINT, SinganSeg, generate, to_uint8
from components.generators.singan_seg.pyramid import pyramid_for, real_pyramid, to_tensor
from components.generators.singan_seg.train import Trained, train_scale
from components.imageset import ImageSet
from components.runtime import make_runtime, torch_threads
from components.tracking import NullReporter

TINY = SinganConfig(min_size=12, max_size=24, scale_factor=0.5, nfc=8, niter=4, log_every=2)
RUNTIME = make_runtime("cpu", "fp32", False)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convs gain nothing from threads; on a shared machine they only add contention.
    with torch_threads(1):
        yield


def polyps(n: int, size: int = 24, seed: int = 0) -> ImageSet:
    """Polyp-like phantoms: a bright blob on a reddish gradient; the mask is the blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(size * 0.3, size * 0.7, 2).tolist() + [rng.uniform(3, size / 4)]
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.uint8)
        base = np.stack([150 + 60 * xx / size, 60 + 40 * yy / size, 50 + 0 * xx], -1)
        img = base + mask[..., None] * np.array([80, 90, 60]) + rng.normal(0, 6, (size, size, 3))
        images.append(img.clip(0, 255).astype(np.uint8))
        masks.append(mask)
    return ImageSet(np.stack(images), masks=np.stack(masks), ids=[f"p{i}" for i in range(n)])


def blank_model(data: ImageSet, i: int, cfg: SinganConfig = TINY, seed: int = 0) -> SinganModel:
    h, w = data.images.shape[1:3]
    return SinganModel(
        image_id=data.ids[i],
        seed=seed + i,
        settings=training_settings(cfg),
        pyramid=pyramid_for(h, w, cfg),
        image=data.images[i],
        mask=data.masks[i],
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> SinganSeg:
    gen = SinganSeg.build(TINY, 3, RUNTIME)
    with torch_threads(1):
        gen.fit(polyps(2), tmp_path_factory.mktemp("fit"), NullReporter())
    return gen


# --- pyramid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hw", "sizes"),
    [
        # 64x64, defaults (min 25, max 250, factor 0.75):
        #   num_scales = ceil(log_0.75(25/64)) + 1 = ceil(3.27) + 1 = 5
        #   scale2stop = ceil(log_0.75(min(250, 64) / 64)) = 0  -> stop_scale = 5, scale1 = 1
        #   factor = (25/64)^(1/5) = 0.8286; side_i = ceil(64 * factor^(5-i))
        #   = ceil(25.0, 30.17, 36.41, 43.94, 53.03, 64) = 25, 31, 37, 44, 54, 64
        ((64, 64), [(25, 25), (31, 31), (37, 37), (44, 44), (54, 54), (64, 64)]),
        # 32x48: num_scales = ceil(log_0.75(25/32)) + 1 = ceil(0.86) + 1 = 2, stop_scale = 2,
        #   factor = (25/32)^(1/2) = 0.8839; 32 * factor^2 = 25.000000000000004 in floats, so
        #   ceil gives 26 (as in the original); 48 * 0.78125 = 37.5 -> 38; 32*0.8839 = 28.28 -> 29,
        #   48 * 0.8839 = 42.43 -> 43
        ((32, 48), [(26, 38), (29, 43), (32, 48)]),
        # 1000x1000: num_scales = ceil(log_0.75(0.025)) + 1 = ceil(12.82) + 1 = 14,
        #   scale2stop = ceil(log_0.75(250/1000)) = ceil(4.82) = 5 -> stop_scale = 9,
        #   scale1 = 0.25 -> 250 px, factor = (25/250)^(1/9) = 0.7743;
        #   ceil(250 * 0.7743^(9-i)) = 26 (25.000000000000007), 33, 42, 54, 70, 90, 117, 150, 194, 250
        (
            (1000, 1000),
            [(s, s) for s in (26, 33, 42, 54, 70, 90, 117, 150, 194, 250)],
        ),
    ],
)
def test_pyramid_sizes_follow_the_original_arithmetic(hw, sizes):
    pyr = pyramid_for(*hw, SinganConfig())
    assert list(pyr.sizes) == sizes
    assert pyr.scale_factor == pytest.approx((25 / min(sizes[-1])) ** (1 / (len(sizes) - 1)))


def test_pyramid_refuses_images_below_min_size():
    with pytest.raises(ConfigError, match="singan.min_size"):
        pyramid_for(20, 40, SinganConfig())


def test_real_pyramid_keeps_four_channels_in_range():
    data = polyps(1)
    reals = real_pyramid(to_tensor(data.images[0], data.masks[0]), pyramid_for(24, 24, TINY))
    assert [tuple(r.shape) for r in reals] == [(1, 4, 13, 13), (1, 4, 17, 17), (1, 4, 24, 24)]
    assert all(r.min() >= -1 and r.max() <= 1 for r in reals)


# --- networks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "nfc", "h", "w"), [(1, 8, 13, 13), (3, 8, 17, 24), (2, 16, 30, 20)])
def test_g_and_d_shapes_for_k_stacked_4_channel_models(k, nfc, h, w):
    states = {
        kind: networks.stack_states(
            [
                networks.fresh_state(kind, 4, nfc, 5, torch.Generator().manual_seed(i))
                for i in range(k)
            ]
        )
        for kind in ("G", "D")
    }
    g = networks.build("G", 4, nfc, 5, k, torch.device("cpu"))
    d = networks.build("D", 4, nfc, 5, k, torch.device("cpu"))
    g.load_state_dict(states["G"])
    d.load_state_dict(states["D"])
    x = torch.randn(1, 4 * k, h, w)
    assert g(x, x).shape == (1, 4 * k, h, w)
    assert d(x).shape == (1, k, h - 10, w - 10)  # 5 unpadded 3x3 convs: 2 px less each
    assert sum(isinstance(m, torch.nn.Conv2d) for m in g.modules()) == 5


def test_width_doubles_every_four_scales_up_to_the_cap():
    assert [networks.nfc_at(SinganConfig(), n) for n in (0, 3, 4, 7, 8, 12)] == [
        32,
        32,
        64,
        64,
        128,
        128,
    ]


def test_stack_and_unstack_states_round_trip():
    states = [
        networks.fresh_state("D", 4, 8, 5, torch.Generator().manual_seed(i)) for i in range(3)
    ]
    back = networks.unstack_state(networks.stack_states(states), 3)
    assert all(torch.equal(a[key], b[key]) for a, b in zip(states, back) for key in a)


def test_mask_channel_is_thresholded_at_half():
    x = torch.full((1, 4, 1, 4), -1.0)
    x[0, 3, 0] = torch.tensor([-1.0, -0.01, 0.01, 1.0])  # 0, 0.495, 0.505, 1 in [0, 1]
    x[0, :3, 0, 3] = 1.0
    rgb, mask = to_uint8(x)
    assert mask.dtype == np.uint8 and mask[0, 0].tolist() == [0, 0, 1, 1]
    assert rgb.shape == (1, 1, 4, 3) and rgb[0, 0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 0, 3].tolist() == [255, 255, 255]


# --- training ------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_a_scale_reduces_the_reconstruction_loss():
    data = polyps(1)
    real = real_pyramid(to_tensor(data.images[0], data.masks[0]), pyramid_for(24, 24, TINY))[0]
    cfg = TINY.model_copy(update={"niter": 30, "log_every": 1})
    rec: list[float] = []
    train_scale(
        cfg, real, (13, 13), Trained(), [0], RUNTIME, lambda it, l: rec.append(l["rec"].item())
    )
    assert len(rec) == 30
    assert np.mean(rec[-5:]) < 0.7 * np.mean(rec[:5])


class CrashAfter(NullReporter):
    """A reporter that records metric names and raises (a simulated crash) on ``metric``."""

    def __init__(self, metric: str) -> None:
        super().__init__()
        self.crash_on, self.names = metric, []

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.names.append(name)
        if name == self.crash_on:
            raise KeyboardInterrupt("simulated crash")


def test_fit_resumes_at_the_first_unfinished_scale(tmp_path: Path):
    data = polyps(2)
    cfg = Config(singan=TINY, seed=5)
    crash = CrashAfter("p1/scale1/rec_rmse")
    with pytest.raises(KeyboardInterrupt):
        SinganSeg.build(cfg.singan, cfg.seed, RUNTIME).fit(data, tmp_path / "run", crash)
    assert (
        torch.load(tmp_path / "run" / "p1" / CHECKPOINT, weights_only=True)["rec_rmse"].__len__()
        == 2
    )

    resumed, seen = SinganSeg.build(cfg.singan, cfg.seed, RUNTIME), CrashAfter("never")
    resumed.fit(data, tmp_path / "run", seen)
    assert not any("/scale0/" in n or "/scale1/" in n for n in seen.names)
    assert any("/scale2/" in n for n in seen.names)

    straight = SinganSeg.build(cfg.singan, cfg.seed, RUNTIME)
    straight.fit(data, tmp_path / "straight", NullReporter())
    for a, b in zip(resumed.models, straight.models, strict=True):
        assert a.noise_amps == b.noise_amps and torch.equal(a.z_rec, b.z_rec)
        for sa, sb in zip(a.g_states + a.d_states, b.g_states + b.d_states, strict=True):
            assert all(torch.equal(sa[key], sb[key]) for key in sa)


def test_resume_refuses_a_checkpoint_trained_with_other_settings(tmp_path: Path):
    data = polyps(1)
    SinganSeg.build(TINY.model_copy(update={"niter": 1}), 42, RUNTIME).fit(
        data, tmp_path, NullReporter()
    )
    with pytest.raises(ConfigError, match="p0/singan.pt: trained with other settings"):
        SinganSeg.build(TINY, 42, RUNTIME).fit(data, tmp_path, NullReporter())


def test_fit_needs_masks(tmp_path: Path):
    data = polyps(1)
    with pytest.raises(DataError, match="no masks"):
        SinganSeg.build(TINY, 42, RUNTIME).fit(ImageSet(data.images), tmp_path, NullReporter())


def test_k_models_at_once_equal_one_by_one():
    data = polyps(3, seed=1)
    cfg = TINY.model_copy(update={"niter": 3})
    models = [blank_model(data, i, cfg) for i in range(3)]
    together = train_group(cfg, models, RUNTIME)
    alone = [train_group(cfg, [m], RUNTIME)[0] for m in models]
    for a, b in zip(together, alone, strict=True):
        assert a.finished == b.finished == 3
        np.testing.assert_allclose(a.noise_amps, b.noise_amps, rtol=1e-4)
        torch.testing.assert_close(a.z_rec, b.z_rec)
        for sa, sb in zip(a.g_states + a.d_states, b.g_states + b.d_states, strict=True):
            for key in sa:
                torch.testing.assert_close(sa[key], sb[key], rtol=1e-4, atol=1e-5, msg=key)


# --- sampling and checkpoints ----------------------------------------------------------------


def test_samples_come_with_binary_masks_spread_over_models(fitted: SinganSeg):
    out = fitted.sample(5, seed=0)
    assert out.images.shape == (5, 24, 24, 3) and out.masks.shape == (5, 24, 24)
    assert set(np.unique(out.masks)) <= {0, 1}
    assert out.ids == ["p0-s000", "p0-s001", "p0-s002", "p1-s000", "p1-s001"]
    assert np.array_equal(fitted.sample(5, seed=0).images, out.images)
    assert not np.array_equal(fitted.sample(5, seed=1).images, out.images)


def test_generation_at_another_size_and_from_a_later_scale(fitted: SinganSeg):
    model = fitted.models[0]
    gen = torch.Generator().manual_seed(0)
    wide = generate(model, 2, gen, RUNTIME, scale_hw=(1.5, 0.75))
    assert wide.shape == (2, 4, 36, 18)
    # Starting at the last+1 scale is the pure reconstruction path: seed-free, and as close
    # to the real image as training measured.
    rec = generate(model, 2, gen, RUNTIME, start_scale=3)
    assert torch.equal(rec[0], rec[1])
    real = real_pyramid(to_tensor(model.image, model.mask), model.pyramid)[-1]
    assert ((rec[:1] - real) ** 2).mean().sqrt().item() == pytest.approx(
        model.rec_rmse[-1], rel=1e-4
    )
    late = generate(model, 2, gen, RUNTIME, start_scale=2)
    assert not torch.equal(late[0], late[1])
    # Noise enters only at the finest scale, scaled by a small amplitude: close to the rec.
    assert (late - rec).abs().mean() < (generate(model, 2, gen, RUNTIME) - rec).abs().mean()


def test_saved_generator_loads_with_weights_only(fitted: SinganSeg, tmp_path: Path):
    path = tmp_path / "singan.pt"
    fitted.save(path)
    raw = torch.load(path, weights_only=True)
    assert len(raw["models"]) == 2 and len(raw["models"][0]["G"]) == 3
    loaded = SinganSeg.load(path, RUNTIME)
    assert np.array_equal(loaded.sample(3, seed=7).images, fitted.sample(3, seed=7).images)
    assert np.array_equal(loaded.style_images(loaded.sample(3, seed=7))[2], fitted.models[1].image)


def test_generator_is_registered():
    from components.generators import get_generator

    assert get_generator("singan-seg") is SinganSeg


# --- per-scale schedule, loop savings ------------------------------------------------------


def test_one_forward_counted_as_three_updates_batchnorm_as_three_forwards():
    from components.generators.singan_seg.train import counts_as

    def bn_net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3), torch.nn.BatchNorm2d(6)).train()

    torch.manual_seed(0)
    once, twice = bn_net(), bn_net()
    twice.load_state_dict(once.state_dict())
    x = torch.randn(1, 4, 9, 9)
    with counts_as(once, 3):
        once(x)
    for _ in range(3):
        twice(x)
    for key, value in twice.state_dict().items():
        torch.testing.assert_close(once.state_dict()[key], value, msg=key)
    assert once[1].momentum == 0.1  # restored


def test_frozen_random_passes_as_one_batch_equal_separate_passes(fitted: SinganSeg):
    from components.generators.singan_seg.train import random_prevs, run_scales

    model = fitted.models[0]
    nets = []
    for scale, state in enumerate(model.g_states[:2]):
        net = networks.build(
            "G", 4, networks.nfc_at(TINY, scale), TINY.num_layer, 1, RUNTIME.device
        )
        net.load_state_dict(state)
        nets.append(net.eval())
    amps = [torch.tensor(a) for a in model.noise_amps[:2]]
    sizes = list(model.pyramid.sizes[:2])
    gen = torch.Generator().manual_seed(1)
    maps = [torch.randn(1, 4, *sizes[i % 2], generator=gen) for i in range(6)]  # 3 passes x 2
    with torch.no_grad():
        batch = random_prevs(nets, amps, sizes, maps, model.pyramid.sizes[2], 3)
        alone = [
            run_scales(nets, amps, sizes, maps[2 * j : 2 * j + 2], model.pyramid.sizes[2])
            for j in range(3)
        ]
    torch.testing.assert_close(batch, torch.cat(alone), rtol=1e-5, atol=1e-6)


def test_schedule_stacks_small_scales_and_runs_large_ones_alone_on_a_cpu(monkeypatch):
    from components.generators.singan_seg import schedule
    from components.runtime import Runtime

    cfg = SinganConfig(models_at_once=8, one_by_one_from_side=150, bf16_from_side=150)
    gpu = Runtime(torch.device("cuda"), torch.bfloat16, True)
    assert [schedule.models_at(cfg, RUNTIME, s) for s in ((30, 25), (149, 120), (150, 90))] == [
        8,
        8,
        1,
    ]
    assert schedule.models_at(cfg, gpu, (250, 213)) == 8
    assert (
        schedule.models_at(
            cfg.model_copy(update={"one_by_one_from_side": None}), RUNTIME, (250, 213)
        )
        == 8
    )
    monkeypatch.setattr(schedule, "cpu_has_fast_bf16", lambda: True)
    big = schedule.runtime_at(cfg, RUNTIME, (250, 213))
    assert big.autocast_dtype == torch.bfloat16 and not big.channels_last
    assert schedule.runtime_at(cfg, RUNTIME, (147, 125)) is RUNTIME
    assert schedule.runtime_at(cfg, gpu, (30, 25)) is gpu  # a GPU keeps its own precision
    monkeypatch.setattr(schedule, "cpu_has_fast_bf16", lambda: False)
    assert schedule.runtime_at(cfg, RUNTIME, (250, 213)) is RUNTIME


def test_per_scale_k_equals_one_by_one():
    data = polyps(3, seed=2)
    # Scale 0 (13 px) stacks all three, scales 1-2 (17, 24 px) run them one at a time.
    cfg = TINY.model_copy(update={"niter": 3, "one_by_one_from_side": 17})
    models = [blank_model(data, i, cfg) for i in range(3)]
    mixed = train_group(cfg, models, RUNTIME)
    alone = [train_group(cfg, [m], RUNTIME)[0] for m in models]
    for a, b in zip(mixed, alone, strict=True):
        np.testing.assert_allclose(a.noise_amps, b.noise_amps, rtol=1e-4)
        np.testing.assert_allclose(a.rec_rmse, b.rec_rmse, rtol=1e-4)
        for sa, sb in zip(a.g_states + a.d_states, b.g_states + b.d_states, strict=True):
            for key in sa:
                torch.testing.assert_close(sa[key], sb[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
def test_bf16_at_large_scales_stays_close_to_fp32(monkeypatch):
    from components.generators.singan_seg import schedule

    # The numerics are the question, not the speed: on a CPU without native bf16 autocast is
    # emulated (slow but the same rounding), so the comparison runs everywhere.
    monkeypatch.setattr(schedule, "cpu_has_fast_bf16", lambda: True)
    data = polyps(2, seed=3)
    fp32 = TINY.model_copy(update={"niter": 20, "bf16_from_side": None})
    bf16 = fp32.model_copy(update={"bf16_from_side": 17})  # scales 1 and 2
    a = train_group(fp32, [blank_model(data, i, fp32) for i in range(2)], RUNTIME)
    b = train_group(bf16, [blank_model(data, i, bf16) for i in range(2)], RUNTIME)
    for ma, mb in zip(a, b, strict=True):
        assert ma.rec_rmse[0] == pytest.approx(mb.rec_rmse[0], rel=1e-5)  # scale 0 is fp32
        assert mb.rec_rmse[-1] == pytest.approx(ma.rec_rmse[-1], rel=0.1)
        assert mb.g_states[-1]["net.0.0.weight"].dtype == torch.float32  # weights stay fp32


# --- fast mode -----------------------------------------------------------------------------

FAST = TINY.model_copy(
    update={"mode": "fast", "fast_stages": 4, "fast_depth": 2, "fast_niter": 4, "min_size": 12}
)


def test_fast_mode_pyramid_follows_consingan_rescaling():
    from components.generators.singan_seg.pyramid import consingan_pyramid

    # 622x529, 6 stages: f = (25/213)^(1/5) = 0.6515; exponents 5, 4.445, 3.730, 2.723, 1, 0:
    # 250 * f^e = 29.3, 37.5, 50.9, 78.0, 162.9 -> ceil 30, 38, 51, 78, 163 (213 * ... for w).
    pyr = consingan_pyramid(622, 529, SinganConfig(mode="fast"))
    assert pyr.sizes == ((30, 25), (38, 32), (51, 44), (78, 67), (163, 139), (250, 213))
    assert pyramid_for(622, 529, SinganConfig(mode="fast")) == pyr
    assert pyramid_for(622, 529, SinganConfig()).num_scales == 9


@pytest.fixture(scope="module")
def fast_fitted(tmp_path_factory: pytest.TempPathFactory) -> SinganSeg:
    gen = SinganSeg.build(FAST, 3, RUNTIME)
    with torch_threads(1):
        gen.fit(polyps(2), tmp_path_factory.mktemp("fast"), NullReporter())
    return gen


class _Stop(Exception):
    pass


def _train_scales(cfg: SinganConfig, model: SinganModel, n: int) -> SinganModel:
    """``model`` trained up to (not including) scale ``n``."""
    out: list[SinganModel] = []

    def done(models: list[SinganModel]) -> None:
        out[:] = models
        if models[0].finished == n:
            raise _Stop

    with pytest.raises(_Stop):
        train_group(cfg, [model], RUNTIME, on_scale_done=done)
    return out[0]


def test_fast_mode_retrains_the_stage_below_with_the_new_one(fast_fitted: SinganSeg):
    m = fast_fitted.models[0]
    assert m.complete and m.pyramid.num_scales == 4
    # Depth 2: stage n retrains stage n-1. After stages 0-1, scale 0 is final (stage 2 leaves
    # it frozen) while scale 1 is changed again by stage 2.
    # (fast_fitted trained its 2 models stacked: equal to one alone up to rounding.)
    partial = _train_scales(FAST, blank_model(polyps(2), 0, FAST, seed=m.seed), 2)
    for key in m.g_states[0]:
        torch.testing.assert_close(
            partial.g_states[0][key], m.g_states[0][key], rtol=1e-4, atol=1e-5
        )
    moved = partial.g_states[1]["net.0.0.weight"] - m.g_states[1]["net.0.0.weight"]
    # 4 iterations x 3 Adam steps at lr_g x fast_lr_scale = 5e-5: about 6e-4, far above rounding.
    assert moved.abs().max() > 1e-4
    out = fast_fitted.sample(3, seed=0)
    assert out.images.shape == (3, 24, 24, 3) and set(np.unique(out.masks)) <= {0, 1}
    # The final reconstruction is what training measured (the same model format and sampler).
    rec = generate(m, 1, torch.Generator().manual_seed(0), RUNTIME, start_scale=4)
    real = real_pyramid(to_tensor(m.image, m.mask), m.pyramid)[-1]
    assert ((rec - real) ** 2).mean().sqrt().item() == pytest.approx(m.rec_rmse[-1], rel=1e-4)


def test_fast_mode_saves_loads_and_resumes(fast_fitted: SinganSeg, tmp_path: Path):
    path = tmp_path / "fast.pt"
    fast_fitted.save(path)
    loaded = SinganSeg.load(path, RUNTIME)
    assert loaded.cfg.mode == "fast"
    assert np.array_equal(loaded.sample(2, seed=5).images, fast_fitted.sample(2, seed=5).images)

    data = polyps(2)
    crash = CrashAfter("p1/scale1/rec_rmse")
    with pytest.raises(KeyboardInterrupt):
        SinganSeg.build(FAST, 3, RUNTIME).fit(data, tmp_path / "run", crash)
    resumed, seen = SinganSeg.build(FAST, 3, RUNTIME), CrashAfter("never")
    resumed.fit(data, tmp_path / "run", seen)
    assert not any("/scale0/" in n for n in seen.names)
    for a, b in zip(resumed.models, fast_fitted.models, strict=True):
        assert a.noise_amps == b.noise_amps
        for sa, sb in zip(a.g_states + a.d_states, b.g_states + b.d_states, strict=True):
            assert all(torch.equal(sa[key], sb[key]) for key in sa)


def test_original_g_update_is_one_update_per_iteration_like_singan_segs_code():
    data = polyps(1, seed=4)
    real = real_pyramid(to_tensor(data.images[0], data.masks[0]), pyramid_for(24, 24, TINY))[0]
    cfg = TINY.model_copy(update={"niter": 3, "g_update": "original"})

    def g_after(c: SinganConfig) -> dict[str, torch.Tensor]:
        return train_scale(c, real, (13, 13), Trained(), [0], RUNTIME).g_state

    one, three = g_after(cfg.model_copy(update={"g_steps": 1})), g_after(cfg)
    # SinGAN-Seg's Gsteps passes are identical and step once: the weights do not depend on
    # g_steps, only BatchNorm's running statistics do (each pass updates them).
    assert torch.equal(one["net.0.0.weight"], three["net.0.0.weight"])
    assert not torch.equal(one["net.0.1.running_mean"], three["net.0.1.running_mean"])
    singan = g_after(cfg.model_copy(update={"g_update": "singan"}))
    assert not torch.equal(singan["net.0.0.weight"], three["net.0.0.weight"])
