"""The licence and attribution of a source, when its metadata does not carry them per image.

ISIC's current metadata has ``copyright_license`` and ``attribution`` columns per image; older
exports (the legacy JSON of the embedded UDA-1 sample) and other datasets (Kvasir-SEG) state
them once, in a ``LICENSE``/``ATTRIBUTION`` file beside the images. Ingestion records that fact
in the manifest's ``license`` and ``attribution`` columns of the rows that have none, so the
licence chain of everything made from the data (dataset cards) starts from the manifest.

Files are looked for at the top of the source and, for a local folder, in its parent (the
embedded ``isic-uda1/LICENSE.txt`` sits above ``isic-uda1/images``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from components.data.sources import LocalSource, Source

LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt", "LICENCE.md")
ATTRIBUTION_NAMES = ("ATTRIBUTION", "ATTRIBUTION.txt", "ATTRIBUTION.md")
# Most specific first: "Attribution-NonCommercial 4.0" also contains "Attribution".
_KNOWN = (
    (r"CC0 1\.0", "CC0-1.0"),
    (r"Attribution-NonCommercial-ShareAlike 4\.0", "CC-BY-NC-SA-4.0"),
    (r"Attribution-NonCommercial-NoDerivatives 4\.0", "CC-BY-NC-ND-4.0"),
    (r"Attribution-NonCommercial 4\.0", "CC-BY-NC-4.0"),
    (r"Attribution-ShareAlike 4\.0", "CC-BY-SA-4.0"),
    (r"Attribution 4\.0", "CC-BY-4.0"),
    (r"Apache License,?\s+Version 2\.0", "Apache-2.0"),
    (r"\bMIT License\b", "MIT"),
)


def spdx(text: str) -> str:
    """The SPDX id of a licence text when it is a well-known one, else its first line."""
    for pattern, name in _KNOWN:
        if re.search(pattern, text):
            return name
    return _first_line(text)[:100]


def source_licence(source: Source, keys: list[str]) -> tuple[str, str]:
    """``(licence, attribution)`` stated by files of ``source`` ("" where none is found)."""
    return _stated(source, keys, LICENCE_NAMES, spdx), _stated(source, keys, ATTRIBUTION_NAMES, _first_line)


def _stated(source: Source, keys: list[str], names: tuple[str, ...], parse: object) -> str:
    top = {PurePosixPath(k).name: k for k in keys if "/" not in k}
    for name in names:
        if name in top:
            return parse(_text(source.read(top[name])))  # type: ignore[operator]
    if isinstance(source, LocalSource):
        for name in names:
            path = Path(source.uri).resolve().parent / name
            if path.is_file():
                return parse(_text(path.read_bytes()))  # type: ignore[operator]
    return ""


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
