"""Small file helpers: atomic writes and content hashes.

Nothing synthmed writes may be seen half-written: every file goes to a temporary name in the same
folder and is renamed into place (``os.replace`` is atomic on POSIX), and a folder is built under a
temporary name and swapped in whole.

An output location that takes no writes (read-only, full, a path under a regular file) is a user's
problem, not a bug: the writers raise :class:`~components.errors.OutputError`, one line naming the
output and the system's reason, and leave what was there before untouched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.errors import OutputError

# errno values that say "this place takes no writes". Inside atomic_dir's body only these become
# OutputError: a missing or unreadable *input* read there keeps its own exception.
_UNWRITABLE = frozenset({
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
    errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
})  # fmt: skip


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    """One line: the output, the system's reason and, when another, the place that refused.

    The refusing place is named only when it is above ``path`` (a parent that is a file, say):
    the temporary names these helpers use are never shown.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        where = Path(os.fsdecode(exc.filename))
        if where != path and path.is_relative_to(where):
            reason = f"{reason}: {where}"
    return OutputError(f"{path}: cannot write ({reason})")


def _inside(exc: OSError, folder: Path) -> bool:
    if exc.filename is None:
        return True  # a failed write() names no file (ENOSPC, EFBIG)
    return Path(os.fsdecode(exc.filename)).resolve().is_relative_to(folder.resolve())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename.

    Raises:
        OutputError: the folder cannot be created or written (read-only, full, not a folder).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON with sorted keys so identical content gives identical bytes (DVC hashes it)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder under a temporary name; on success replace ``path`` with it.

    If the body raises, the temporary folder is removed and ``path`` is left as it was.

    Raises:
        OutputError: the folder cannot be created, or writing into it failed for lack of room or
            permission (also when the body's own write failed so, inside the temporary folder).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = exc.__cause__ if isinstance(exc, OutputError) else exc
        # A nested atomic write names its temporary file; the user knows this folder.
        if isinstance(cause, OSError) and cause.errno in _UNWRITABLE and _inside(cause, tmp):
            raise _cannot_write(path, cause) from cause
        raise
    old = path.with_name(f".{path.name}.old")
    try:
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as exc:
        if old.exists() and not path.exists():
            with contextlib.suppress(OSError):
                os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise _cannot_write(path, exc) from exc
    shutil.rmtree(old, ignore_errors=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_state_dict_file(path: Path, field: str) -> dict[str, Any]:
    """A local weights file as a state_dict, or a one-line ConfigError naming ``field``.

    ``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is refused.
    """
    import pickle

    import torch

    from components.errors import ConfigError

    where = f"{field}: {path}"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # Unpickling refuses code objects (weights_only), torch refuses truncated zips.
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: not a loadable state_dict ({reason})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{where}: expected a state_dict, got {type(state).__name__}")
    return state
