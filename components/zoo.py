"""The generator zoo: every registered generator, searchable, and one call to sample from any.

The zoo is the MLflow model registry itself: :func:`components.registry.register_generator`
tags each generator's registered model (``synthmed.type=generator``, kind, modality, output,
size) and each publisher tags the version with its latest dataset card's figures (``card.kid``,
``card.memorized_share``, ``card.licence``...). :func:`list_generators` reads that back, filters
and ranks; :func:`sample` loads a version through its pyfunc model (whatever generator kind it
holds: nothing here knows the kinds) and writes the images in a layout ``synthmed ingest``
reads, with a dataset card:

- dermoscopy: ISIC legacy, ``ISIC_9nnnnnn.jpg`` + ``ISIC_9nnnnnn.json`` (``meta.clinical.
  benign_malignant`` when the generator gives labels; ``meta.synthetic`` true). The 9 prefix
  keeps the ids away from the archive's, which are far below ISIC_9000000;
- endoscopy: Kvasir-SEG, ``images/<id>.jpg`` + ``masks/<id>.png`` (lossless masks).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch.utils.data

from components.errors import ConfigError, DataError, SynthmedError
from components.imageset import LABEL_CODES, LABEL_NAMES, ImageSet

if TYPE_CHECKING:
    from components.generators.base import Generator

GENERATOR_FILTER = "tags.`synthmed.type` = 'generator'"
LOWER_IS_BETTER = frozenset({"fid", "kid", "memorized_share"})
RANKS = ("fid", "kid", "precision", "recall", "density", "coverage", "memorized_share")
ISIC_OFFSET = 9_000_000
_URI = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")


# --------------------------------------------------------------------------------------------
# where the registry is


def connect(tracking_uri: str | None = None, params: str | Path | None = None) -> str:
    """Point MLflow at ``tracking_uri``, else MLFLOW_TRACKING_URI, else the project's configured
    store (``params``, default ./params.yaml when present); returns the URI used."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        path = Path(params or "params.yaml")
        if path.is_file():
            from components.config import load_config
            from components.tracking import tracking_uri as configured

            tracking_uri = configured(load_config(path).tracking)
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    return str(mlflow.get_tracking_uri())


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


# --------------------------------------------------------------------------------------------
# listing


def list_generators(
    modality: str | None = None,
    output: str | None = None,
    kind: str | None = None,
    rank_by: str | None = None,
) -> list[dict[str, Any]]:
    """Every registered generator's latest version with its metadata, filtered and ranked.

    Each row: ``name``, ``version``, ``aliases``, ``kind``, ``modality``, ``output``,
    ``image_size``, ``training_data`` (manifest sha256 and sources), ``licence``, the card's
    figures (``fid``, ``kid``, ``precision``, ``recall``, ``density``, ``coverage``,
    ``memorized_share``, ``memorization``, ``features``, ``card_set``) and ``description``.
    ``rank_by`` sorts best first (lower is better for fid, kid and memorized_share); rows
    without the figure come last.

    Raises:
        ConfigError: ``rank_by`` is not a card figure.
    """
    if rank_by is not None and rank_by not in RANKS:
        raise ConfigError(f"--rank-by: '{rank_by}' is not a card figure ({', '.join(RANKS)})")
    client = _client()
    rows = []
    for model in _search(client):
        versions = client.search_model_versions(f"name = '{model.name}'")
        if not versions:
            continue
        latest = max(versions, key=lambda v: int(v.version))
        rows.append(_row(model, latest))
    wanted = {"modality": modality, "output": output, "kind": kind}
    rows = [r for r in rows if all(v is None or r[k] == v for k, v in wanted.items())]
    if rank_by is not None:
        sign = 1.0 if rank_by in LOWER_IS_BETTER else -1.0
        rows.sort(key=lambda r: (r[rank_by] is None, sign * (r[rank_by] or 0.0), r["name"]))
    else:
        rows.sort(key=lambda r: r["name"])
    return rows


def _search(client: Any) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_registered_models(filter_string=GENERATOR_FILTER, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _row(model: Any, version: Any) -> dict[str, Any]:
    tags = {**dict(model.tags), **dict(version.tags)}

    def figure(key: str) -> float | None:
        value = tags.get(f"card.{key}")
        return None if value is None else float(value)

    size = tags.get("generator.image_size")
    aliases = sorted(a for a, v in (model.aliases or {}).items() if str(v) == str(version.version))
    return {
        "name": model.name,
        "version": str(version.version),
        "aliases": aliases,
        "kind": tags.get("generator.kind"),
        "modality": tags.get("generator.modality"),
        "output": tags.get("generator.output"),
        "image_size": int(size) if size else None,
        "training_data": tags.get("card.training") or tags.get("data.manifest_sha256"),
        "manifest_sha256": tags.get("data.manifest_sha256"),
        "licence": tags.get("card.licence"),
        **{key: figure(key) for key in RANKS},
        "memorization": tags.get("card.memorization"),
        "features": tags.get("card.features"),
        "card_set": tags.get("card.set"),
        "description": version.description or model.description or "",
    }


# --------------------------------------------------------------------------------------------
# one version


def resolve(model: str) -> tuple[str, str]:
    """``NAME``, ``NAME@alias``, ``NAME/3`` or ``models:/...`` -> (name, version); no version
    means the latest.

    Raises:
        SynthmedError: not such a reference, or the model, alias or version is not registered.
    """
    from mlflow.exceptions import MlflowException

    match = _URI.match(model.strip())
    if match is None:
        raise ConfigError(f"{model}: not a model reference (NAME, NAME@alias, NAME/VERSION)")
    name, alias, version = match["name"], match["alias"], match["version"]
    client = _client()
    try:
        if alias:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        if version:
            return name, str(client.get_model_version(name, version).version)
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise SynthmedError(f"{model}: not in the registry ({_first_line(exc)})") from None
    if not versions:
        raise SynthmedError(f"{model}: no registered model of that name")
    return name, str(max(int(v.version) for v in versions))


def load(name: str, version: str) -> Generator:
    """The generator of version ``version`` of ``name``, loaded through its pyfunc model.

    Raises:
        SynthmedError: the version is not a synthmed generator.
    """
    import mlflow

    uri = f"models:/{name}/{version}"
    with tempfile.TemporaryDirectory(prefix="synthmed-zoo-") as tmp, _kept_sys_path():
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        try:
            inner = mlflow.pyfunc.load_model(local).unwrap_python_model()
        except Exception as exc:  # noqa: BLE001  (a model of another flavor or a broken one)
            raise SynthmedError(f"{uri}: cannot load it as a pyfunc model ({_first_line(exc)})") from None
        gen = getattr(inner, "generator", None)
        if gen is None:
            raise SynthmedError(f"{uri}: not a synthmed generator (its pyfunc has no generator)")
    return gen


@contextlib.contextmanager
def _kept_sys_path() -> Iterator[None]:
    """Loading a pyfunc prepends its logged code to sys.path for good; undo that afterwards
    (the modules it imported are ours already: the installed package wins)."""
    saved = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = saved


def version_facts(name: str, version: str) -> dict[str, Any]:
    """The registry's facts about one generator version (the :func:`list_generators` row)."""
    client = _client()
    return _row(client.get_registered_model(name), client.get_model_version(name, version))


# --------------------------------------------------------------------------------------------
# sampling


@dataclass
class Sampled:
    """What :func:`sample` drew: the images, where they were written, their card."""

    images: ImageSet
    model: str
    path: Path | None
    card: dict[str, Any] | None

    @property
    def dataset(self) -> SampleDataset:
        """The images as a torch ``Dataset`` (see :class:`SampleDataset`)."""
        return SampleDataset(self.images)


class SampleDataset(torch.utils.data.Dataset):
    """A torch ``Dataset`` over sampled images: item ``i`` is ``(image, target)`` with the image a
    3 x H x W float tensor in [0, 1] and the target the label (int64), the mask (1 x H x W
    float {0, 1}) or None when the generator gives neither."""

    def __init__(self, images: ImageSet) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        image = torch.from_numpy(np.ascontiguousarray(self.images.images[i])).permute(2, 0, 1)
        x = image.float() / 255.0
        if self.images.masks is not None:
            return x, torch.from_numpy(self.images.masks[i].astype(np.float32))[None]
        if self.images.labels is not None:
            return x, torch.tensor(int(self.images.labels[i]))
        return x, None


def sample(
    model: str,
    n: int,
    out: str | Path | None = None,
    label: str | None = None,
    seed: int = 0,
) -> Sampled:
    """Draw ``n`` images from a registered generator; with ``out``, write them there in the
    layout synthmed ingests, with a dataset card.

    Args:
        model: ``NAME``, ``NAME@alias`` or ``NAME/VERSION`` (``models:/`` optional).
        label: ``benign`` or ``malignant``: every image of that class (conditional generators).
        seed: The same seed draws the same images.

    Raises:
        SynthmedError: unknown model, an unconditional generator asked for a label, n < 1, or
            ``out`` exists and is not empty.
    """
    from components.generators.base import get_generator

    if n < 1:
        raise ConfigError(f"-n: {n}: draw at least one image")
    labels = None
    if label is not None:
        if label not in LABEL_CODES:
            raise ConfigError(f"--label: '{label}' is not one of {', '.join(LABEL_NAMES)}")
    name, version = resolve(model)
    ref = f"{name}/{version}"
    gen = load(name, version)
    if label is not None:
        if not gen.conditional:
            raise ConfigError(f"--label: {ref} is an unconditional generator ({gen.kind}): it has no labels")
        labels = np.full(n, LABEL_CODES[label], dtype=np.int64)
    images = gen.sample(n, seed=seed, labels=labels)
    card = None
    folder = None
    if out is not None:
        folder = Path(out)
        modality = get_generator(gen.kind).modality
        card = write_folder(images, folder, ref, gen.kind, modality, seed, version_facts(name, version))
    return Sampled(images, ref, folder, card)


def write_folder(
    images: ImageSet,
    out: Path,
    ref: str,
    kind: str,
    modality: str,
    seed: int,
    facts: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``images`` into ``out`` (a new or empty folder) as ISIC legacy or Kvasir-SEG, with a
    dataset card whose figures are the generator's latest card's; returns the card."""
    from components import cards
    from components.io import atomic_dir

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not an empty folder; choose a new --out")
    name = ref.replace("/", "-v")
    with atomic_dir(out) as tmp:
        if modality == "endoscopy" or images.masks is not None:
            _write_kvasir(images, tmp)
        else:
            _write_isic(images, tmp, ref, facts.get("licence"))
        cards.write_card(tmp, f"sample-{name}-seed{seed}", images, _facts(ref, kind, seed, facts))
    return json.loads((out / "card.json").read_text(encoding="utf-8"))


def _facts(ref: str, kind: str, seed: int, facts: Mapping[str, Any]) -> Any:
    from components import cards

    name, _, version = ref.partition("/")
    licence = facts.get("licence") or "not recorded"
    figures = {k: facts.get(k) for k in RANKS if facts.get(k) is not None}
    note = (
        f"figures of {ref}'s latest dataset card (set {facts['card_set']}, {facts.get('features')} "
        f"features): {', '.join(f'{k}={v:.4g}' for k, v in figures.items())}; not measured on "
        "this sample, which was drawn without the real data at hand"
        if facts.get("card_set")
        else f"{ref} has no dataset card yet"
    )
    training = {
        "dataset": {"dermoscopy": "lesions", "endoscopy": "polyps"}.get(facts.get("modality") or "", "unknown"),
        "source": facts.get("training_data") or "not recorded",
        "formats": [],
        "splits": [],
        "n_images": "an unknown number of",
        "manifest_sha256": facts.get("manifest_sha256"),
        "licences": [{"dataset": f"training data of {ref}", "license": licence,
                      "attribution": f"as in the card of {facts.get('card_set') or 'its published sets'}",
                      "images": "n/a"}],
    }  # fmt: skip
    return cards.CardFacts(
        generator=cards.GeneratorFacts(kind, name, version, "see the registered version", seed),
        training=training,
        quality=None,
        quality_note=note,
        set_licence=licence,
        extra={"sampled_from": f"models:/{ref}", "seed": seed, "generator_card": facts.get("card_set")},
    )


def _isic_id(i: int) -> str:
    return f"ISIC_{ISIC_OFFSET + i:07d}"


def _write_isic(images: ImageSet, folder: Path, ref: str, licence: str | None) -> None:
    from PIL import Image

    for i in range(len(images)):
        image_id = _isic_id(i)
        Image.fromarray(images.images[i]).save(folder / f"{image_id}.jpg", quality=95)
        clinical: dict[str, Any] = {}
        if images.labels is not None:
            clinical["benign_malignant"] = LABEL_NAMES[int(images.labels[i])]
        doc = {
            "name": image_id,
            "meta": {"clinical": clinical, "synthetic": True, "generator": f"models:/{ref}"},
            "copyright_license": "" if not licence or licence.startswith("unknown") else licence.split(" ")[0],
            "attribution": f"synthetic image drawn from models:/{ref} by synthmed",
        }
        (folder / f"{image_id}.json").write_text(json.dumps(doc, sort_keys=True) + "\n", encoding="utf-8")


def _write_kvasir(images: ImageSet, folder: Path) -> None:
    from PIL import Image

    (folder / "images").mkdir()
    if images.masks is not None:
        (folder / "masks").mkdir()
    for i in range(len(images)):
        image_id = f"syn{i:06d}"
        Image.fromarray(images.images[i]).save(folder / "images" / f"{image_id}.jpg", quality=95)
        if images.masks is not None:
            mask = (images.masks[i] > 0).astype(np.uint8) * 255
            Image.fromarray(mask).save(folder / "masks" / f"{image_id}.png")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
