"""Where raw images come from: a local folder or an ``s3://bucket/prefix``.

A :class:`Source` lists the files under its root as relative POSIX keys (``"sub/ISIC_1.jpg"``) and
reads one key as bytes. The readers of each dataset layout (``isic.py``, ``polyps.py``) only see
keys and bytes, so a layout works the same from disk or from S3, and tests can point them at a
moto server. The readers describe what they found as :class:`Entry` objects; ``manifest.py``
decodes the images and turns entries into manifest rows.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from components.config import S3Config
from components.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
"""What any image id must be, since it names the ingested copies (``images/64/<id>.png``): a plain
file name, no separator, no leading dot or dash, nothing a shell or another OS reads differently."""
SAFE_ID_RULE = "a letter or digit, then letters, digits, '.', '_', '-'"


def id_error(image_id: str, pattern: re.Pattern[str] | None = None, rule: str = "") -> str:
    """Why ``image_id`` cannot be an id, or "" when it can.

    It must match the layout's own ``pattern`` when there is one (``rule`` says it in words,
    e.g. "an ISIC id (ISIC_ and 7 digits)"), and in any case be a safe file name.
    """
    if pattern is not None and not pattern.fullmatch(image_id):
        return f"image_id {image_id!r} is not {rule}"
    if not SAFE_ID.fullmatch(image_id):
        return f"image_id {image_id!r} is not a safe file name ({SAFE_ID_RULE})"
    return ""


class Source(Protocol):
    """A read-only tree of files addressed by relative keys."""

    uri: str

    def keys(self) -> list[str]:
        """All file keys under the root, sorted; raises DataError if there are none."""
        ...

    def read(self, key: str) -> bytes:
        """The bytes of one key."""
        ...


def uri_of(source: Source, key: str) -> str:
    """The full address of ``key``, as recorded in the manifest and in error messages."""
    return f"{source.uri.rstrip('/')}/{key}"


def is_image(key: str) -> bool:
    return PurePosixPath(key).suffix.lower() in IMAGE_SUFFIXES


def stem(key: str) -> str:
    return PurePosixPath(key).stem


DOCUMENTS = frozenset({"CARD.md", "card.html", "card.json", "card_samples.png"})
"""The dataset card synthmed writes beside a set's images (components/cards.py): about the
data, never data (its JSON is no ISIC metadata record, its grid no image to train on)."""


def _visible(key: str) -> bool:
    # Dot-files (.DS_Store, editor temp files, our own atomic-write temporaries) are never data.
    parts = PurePosixPath(key).parts
    return not any(part.startswith(".") for part in parts) and parts[-1] not in DOCUMENTS


@dataclass(frozen=True)
class LocalSource:
    """A folder on disk."""

    uri: str

    def keys(self) -> list[str]:
        root = Path(self.uri)
        if not root.is_dir():
            raise DataError(f"{self.uri}: folder not found")
        found = sorted(
            key
            for path in root.rglob("*")
            if path.is_file() and _visible(key := path.relative_to(root).as_posix())
        )
        if not found:
            raise DataError(f"{self.uri}: folder is empty")
        return found

    def read(self, key: str) -> bytes:
        return (Path(self.uri) / key).read_bytes()


@dataclass(frozen=True)
class S3Source:
    """Objects under ``s3://bucket/prefix``, read with boto3.

    Credentials come from the usual AWS_* variables (or any other boto3 credential source); the
    endpoint and region from :class:`~components.config.S3Config`, so MinIO and moto work too.
    """

    uri: str
    s3: S3Config = field(default_factory=S3Config)

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.uri.removeprefix("s3://").split("/", 1)
        # A trailing slash keeps "data" from matching "data-old/..." keys.
        return rest[1].strip("/") + "/" if len(rest) > 1 and rest[1].strip("/") else ""

    @functools.cached_property
    def client(self) -> Any:
        import boto3  # only S3 users pay for the import

        return boto3.client("s3", endpoint_url=self.s3.endpoint_url, region_name=self.s3.region)

    def keys(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if key and not key.endswith("/") and _visible(key):
                        found.append(key)
        except ClientError as exc:
            reason = exc.response.get("Error", {}).get("Message") or str(exc)
            raise DataError(f"{self.uri}: {reason}") from None
        except BotoCoreError as exc:
            raise DataError(f"{self.uri}: {exc}") from None
        if not found:
            raise DataError(f"{self.uri}: no objects under this prefix")
        return sorted(found)

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return obj["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise DataError(f"{uri_of(self, key)}: {exc}") from None


def open_source(uri: str, s3: S3Config | None = None) -> Source:
    """A :class:`Source` for a folder path or an ``s3://bucket/prefix`` URI."""
    if uri.startswith("s3://"):
        if not uri.removeprefix("s3://").split("/", 1)[0]:
            raise DataError(f"{uri}: no bucket name in the S3 URI")
        return S3Source(uri, s3 or S3Config())
    return LocalSource(os.fspath(uri))


@dataclass(frozen=True)
class Entry:
    """One image a layout reader found (or expected), before decoding.

    ``image_key`` is None for metadata that names an image the source does not have.
    ``fields`` holds the manifest columns the metadata gave (label, diagnosis, ...). ``error``
    says what is wrong with the metadata; decoding may add more. ``id_error`` says why the id
    cannot be one (:func:`id_error`): such an entry is recorded but never becomes a file. For
    polyps, ``mask_key`` is the mask file and ``mask_in_alpha`` says the image's alpha channel is
    the mask.
    """

    image_id: str
    image_key: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    mask_key: str | None = None
    mask_in_alpha: bool = False
    id_error: str = ""
