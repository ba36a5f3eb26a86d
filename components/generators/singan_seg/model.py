"""The registered generator "singan-seg": one SinGAN per real polyp image, masks included.

``fit`` trains a model per image, K at a time, checkpointing each model after every finished
scale under ``workdir/<image_id>/singan.pt``; a restarted fit resumes at the first unfinished
scale. ``sample`` spreads the requested samples over the models; each sample's mask is the
generated fourth channel thresholded at 0.5.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import SinganConfig
from components.errors import ConfigError, DataError
from components.generators.base import Generator, register
from components.generators.singan_seg import networks
from components.generators.singan_seg.batched import groups, train_group
from components.generators.singan_seg.checkpoint import (
    FORMAT,
    SinganModel,
    iterations,
    load_model,
    save_model,
    training_settings,
)
from components.generators.singan_seg.pyramid import pyramid_for
from components.generators.singan_seg.train import CHANNELS, LogFn, run_scales
from components.imageset import ImageSet
from components.progress import bar
from components.runtime import Runtime
from components.tracking import Reporter

SAMPLE_SEP = "-s"
"""A sample's id is ``<image_id>-s<k>``: :func:`sample_id` writes it, :func:`source_id` reads it."""


def sample_id(image_id: str, k: int) -> str:
    """The id of the ``k``-th sample of the model trained on ``image_id``."""
    return f"{image_id}{SAMPLE_SEP}{k:03d}"


def source_id(sample: str) -> str:
    """The real image a sample's model was trained on (inverse of :func:`sample_id`)."""
    return sample.rsplit(SAMPLE_SEP, 1)[0]


CHECKPOINT = "singan.pt"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def derive_seed(seed: int, name: str) -> int:
    """A 63-bit seed for ``name`` (an image id): independent of order and of K."""
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:15], 16)


def to_uint8(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """N x 4 x H x W in [-1, 1] -> (N x H x W x 3 uint8 RGB, N x H x W uint8 {0, 1} mask).

    The mask channel is thresholded at 0 in [-1, 1], which is 0.5 in [0, 1].
    """
    x = x.detach().float().cpu()
    rgb = ((x[:, :3] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return rgb.numpy(), (x[:, 3] > 0).to(torch.uint8).numpy()


@torch.no_grad()
def generate(
    model: SinganModel,
    n: int,
    gen: torch.Generator,
    runtime: Runtime,
    start_scale: int = 0,
    scale_hw: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """``n`` samples of one trained model, n x 4 x H x W in [-1, 1] (the original's
    ``SinGAN_generate``).

    Scales below ``start_scale`` follow the reconstruction path (fixed noise), so samples keep
    the training image's coarse layout (``num_scales``: the reconstruction itself).
    ``scale_hw`` multiplies every scale's size: the nets are fully convolutional, so other
    sizes and aspect ratios only need noise maps of those sizes.
    """
    if not model.complete:
        raise ConfigError(f"singan: model '{model.image_id}' is not fully trained")
    if not 0 <= start_scale <= model.pyramid.num_scales:
        raise ConfigError(
            f"singan.gen_start_scale: {start_scale} is outside 0..{model.pyramid.num_scales}"
        )
    cfg = SinganConfig(**model.settings)
    sizes = [
        (max(1, round(h * scale_hw[0])), max(1, round(w * scale_hw[1])))
        for h, w in model.pyramid.sizes
    ]
    nets = []
    for scale, state in enumerate(model.g_states):
        net = networks.build(
            "G", CHANNELS, networks.nfc_at(cfg, scale), cfg.num_layer, 1, runtime.device
        )
        net.load_state_dict(state)
        nets.append(net.eval().to(memory_format=runtime.memory_format))
    noises: list[torch.Tensor | None] = []
    for scale, (h, w) in enumerate(sizes):
        if scale < start_scale:
            z = model.z_rec.to(runtime.device)[None] if scale == 0 else None
            if z is not None and z.shape[-2:] != (h, w):
                z = torch.nn.functional.interpolate(
                    z, size=(h, w), mode="bilinear", align_corners=False
                )
            noises.append(None if z is None else z.expand(n, -1, -1, -1))
        else:
            c = 1 if scale == 0 else CHANNELS
            z = torch.randn(n, c, h, w, generator=gen, device=runtime.device)
            noises.append(z.expand(n, CHANNELS, h, w))
    amps = [torch.tensor(a, device=runtime.device) for a in model.noise_amps]
    with runtime.autocast():
        return run_scales(nets, amps, sizes, noises, sizes[-1])


@register("singan-seg")
class SinganSeg(Generator):
    """SinGAN-Seg: images and masks from one single-image GAN per real image."""

    config_section = "singan"
    modality = "endoscopy"
    output = "image+mask"

    def __init__(self, cfg: SinganConfig, seed: int, runtime: Runtime) -> None:
        self.cfg, self.seed, self.runtime = cfg, seed, runtime
        self.models: list[SinganModel] = []

    @classmethod
    def build(cls, section: SinganConfig, seed: int, runtime: Runtime) -> SinganSeg:  # type: ignore[override]
        return cls(section, seed, runtime)

    def _new_or_resumed(self, data: ImageSet, i: int, image_id: str, path: Path) -> SinganModel:
        h, w = data.images.shape[1:3]
        fresh = SinganModel(
            image_id=image_id,
            seed=derive_seed(self.seed, image_id),
            settings=training_settings(self.cfg),
            pyramid=pyramid_for(h, w, self.cfg),
            image=data.images[i],
            mask=data.masks[i],
        )
        if not path.exists():
            return fresh
        old = load_model(path)
        for what, a, b in (
            ("settings", old.settings, fresh.settings),
            ("seed", old.seed, fresh.seed),
            ("image/mask", old.data_sha256, fresh.data_sha256),
        ):
            if a != b:
                raise ConfigError(
                    f"{path}: trained with other {what} than this run; delete it to retrain"
                )
        return old

    def fit(self, data: ImageSet, workdir: Path, reporter: Reporter) -> dict[str, float]:
        """Train one model per image of ``data`` (which must have masks); resume from ``workdir``."""
        if len(data) == 0:
            raise DataError("singan-seg: the training set is empty")
        if data.masks is None:
            raise DataError("singan-seg: the training set has no masks (polyp images with masks)")
        ids = data.ids or [f"img{i:04d}" for i in range(len(data))]
        for image_id in ids:
            if not _SAFE_ID.fullmatch(image_id):
                raise DataError(f"singan-seg: image id {image_id!r} is not usable as a folder name")
        workdir = Path(workdir)
        paths = {image_id: workdir / image_id / CHECKPOINT for image_id in ids}
        models = [
            self._new_or_resumed(data, i, image_id, paths[image_id])
            for i, image_id in enumerate(ids)
        ]
        scales_todo = sum(m.pyramid.num_scales - m.finished for m in models)
        start = time.perf_counter()
        with bar("singan-seg: models x scales", scales_todo) as advance:

            def scale_done(group_models: list[SinganModel]) -> None:
                self._scale_done(group_models, paths, reporter)
                advance(len(group_models), info=f"scale {group_models[0].finished - 1}")

            for group in groups(models, self.cfg.models_at_once):
                members = [models[i] for i in group]
                ids_ = [m.image_id for m in members]
                trained = train_group(
                    self.cfg,
                    members,
                    self.runtime,
                    on_scale_done=scale_done,
                    on_log=lambda n, part, ids_=ids_: self._logger(
                        n, [ids_[i] for i in part], reporter
                    ),
                )
                for i, m in zip(group, trained, strict=True):
                    models[i] = m
        seconds = time.perf_counter() - start
        self.models = models
        return {
            "singan.models": float(len(models)),
            "singan.scales": float(models[0].pyramid.num_scales),
            "singan.seconds": seconds,
            "singan.model_iters_per_s": scales_todo * iterations(self.cfg) / seconds,
            "singan.rec_rmse_mean": float(np.mean([m.rec_rmse[-1] for m in models])),
        }

    @staticmethod
    def _scale_done(models: list[SinganModel], paths: dict[str, Path], reporter: Reporter) -> None:
        for m in models:
            save_model(m, paths[m.image_id])
            scale = m.finished - 1
            reporter.metric(f"{m.image_id}/scale{scale}/noise_amp", m.noise_amps[-1])
            reporter.metric(f"{m.image_id}/scale{scale}/rec_rmse", m.rec_rmse[-1])

    @staticmethod
    def _logger(scale: int, ids: list[str], reporter: Reporter) -> LogFn:
        def log(it: int, losses: dict[str, torch.Tensor]) -> None:
            values = {name: v.tolist() for name, v in losses.items()}  # one sync per log
            for name, per_model in values.items():
                for image_id, v in zip(ids, per_model, strict=True):
                    reporter.metric(f"{image_id}/scale{scale}/{name}", v, step=it)

        return log

    def sample(self, n: int, seed: int, labels: np.ndarray | None = None) -> ImageSet:
        """``n`` samples spread evenly over the models (the first ``n % M`` get one more).

        Ids are ``<image_id>-s<k>``; labels are None (polyps have no classes).
        """
        if not self.models:
            raise ConfigError("singan-seg: sample() before fit() or load()")
        if n < 1:
            raise ValueError(f"singan-seg: cannot sample {n} images")
        per, extra = divmod(n, len(self.models))
        images, masks, ids = [], [], []
        for i, m in enumerate(self.models):
            count = per + (i < extra)
            if count == 0:
                continue
            gen = torch.Generator(device=self.runtime.device).manual_seed(
                derive_seed(seed, m.image_id)
            )
            x = generate(
                m,
                count,
                gen,
                self.runtime,
                self.cfg.gen_start_scale,
                (self.cfg.sample_scale_h, self.cfg.sample_scale_w),
            )
            rgb, mask = to_uint8(x)
            images.append(rgb)
            masks.append(mask)
            ids += [sample_id(m.image_id, j) for j in range(count)]
        return ImageSet(images=np.concatenate(images), masks=np.concatenate(masks), ids=ids)

    def style_images(self, samples: ImageSet) -> np.ndarray:
        """For each sample (by its id), the real image its model was trained on, N x H x W x 3."""
        by_id = {m.image_id: m.image for m in self.models}
        try:
            return np.stack([by_id[source_id(sid)] for sid in samples.ids or []])
        except KeyError as exc:
            raise DataError(f"singan-seg: sample id of unknown model {exc.args[0]!r}") from None

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format": FORMAT,
            "config": self.cfg.model_dump(),
            "seed": self.seed,
            "models": [m.to_dict() for m in self.models],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], runtime: Runtime) -> SinganSeg:
        if "models" not in state:
            raise DataError("a single-model checkpoint, not a saved singan-seg generator")
        gen = cls(SinganConfig(**state["config"]), int(state["seed"]), runtime)
        gen.models = [SinganModel.from_dict(d) for d in state["models"]]
        return gen
