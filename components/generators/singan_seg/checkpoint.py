"""One trained SinGAN-Seg model (one image) as plain tensors, and its checkpoint file.

A model is its per-scale G and D state_dicts, noise amplitudes and the fixed reconstruction
noise, plus what is needed to check a resume (settings, pyramid, image hash) and the training
image itself (the default style image). Everything is tensors, lists, dicts and scalars, so
``torch.load(weights_only=True)`` reads it; nothing is pickled.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import SinganConfig
from components.errors import DataError
from components.generators.singan_seg.pyramid import Pyramid
from components.io import atomic_write_bytes, sha256_bytes

FORMAT = "synthmed.singan-seg.v1"

SAMPLING_FIELDS = (
    "models_at_once",
    "one_by_one_from_side",
    "log_every",
    "gen_start_scale",
    "sample_scale_h",
    "sample_scale_w",
)
"""SinganConfig fields that do not change what is trained (K-at-once equals one-by-one)."""


def iterations(cfg: SinganConfig) -> int:
    """Training iterations per scale in ``cfg``'s mode."""
    return cfg.fast_niter if cfg.mode == "fast" else cfg.niter


def training_settings(cfg: SinganConfig) -> dict[str, Any]:
    """The settings a checkpoint must have been trained with to be resumed or used."""
    return {k: v for k, v in cfg.model_dump().items() if k not in SAMPLING_FIELDS}


@dataclass(frozen=True)
class SinganModel:
    """One image's SinGAN: finished scales so far (all of them once trained)."""

    image_id: str
    seed: int
    settings: dict[str, Any]
    pyramid: Pyramid
    image: np.ndarray
    """The training image, H x W x 3 uint8 RGB (its mask is channel 4 of the real pyramid)."""
    mask: np.ndarray
    """The training mask, H x W uint8 {0, 1}."""
    g_states: tuple[dict[str, torch.Tensor], ...] = ()
    d_states: tuple[dict[str, torch.Tensor], ...] = ()
    noise_amps: tuple[float, ...] = ()
    rec_rmse: tuple[float, ...] = ()
    """Per scale, RMSE of the final reconstruction (in [-1, 1] units)."""
    z_rec: torch.Tensor | None = None
    """Fixed reconstruction noise of the coarsest scale, 4 x H0 x W0."""

    @property
    def finished(self) -> int:
        return len(self.g_states)

    @property
    def complete(self) -> bool:
        return self.finished == self.pyramid.num_scales

    @property
    def data_sha256(self) -> str:
        return sha256_bytes(self.image.tobytes() + self.mask.tobytes())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "image_id": self.image_id,
            "seed": self.seed,
            "settings": self.settings,
            "sizes": [list(s) for s in self.pyramid.sizes],
            "scale_factor": self.pyramid.scale_factor,
            "image": torch.from_numpy(np.ascontiguousarray(self.image)),
            "mask": torch.from_numpy(np.ascontiguousarray(self.mask)),
            "G": list(self.g_states),
            "D": list(self.d_states),
            "noise_amps": list(self.noise_amps),
            "rec_rmse": list(self.rec_rmse),
            "z_rec": self.z_rec,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SinganModel:
        return cls(
            image_id=d["image_id"],
            seed=int(d["seed"]),
            settings=dict(d["settings"]),
            pyramid=Pyramid(tuple(tuple(s) for s in d["sizes"]), float(d["scale_factor"])),
            image=d["image"].numpy(),
            mask=d["mask"].numpy(),
            g_states=tuple(d["G"]),
            d_states=tuple(d["D"]),
            noise_amps=tuple(float(a) for a in d["noise_amps"]),
            rec_rmse=tuple(float(a) for a in d["rec_rmse"]),
            z_rec=d["z_rec"],
        )


def to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_model(model: SinganModel, path: str | os.PathLike[str]) -> Path:
    """Write one model's checkpoint atomically (a crash never leaves half a file)."""
    return atomic_write_bytes(path, to_bytes(model.to_dict()))


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a SinGAN-Seg file, with one-line errors."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 (pickle/zip errors have many types; one meaning)
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise DataError(f"{path}: not a SinGAN-Seg checkpoint (expected format {FORMAT})")
    return obj


def load_model(path: str | os.PathLike[str]) -> SinganModel:
    return SinganModel.from_dict(read_checkpoint(path))
