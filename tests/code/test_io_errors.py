"""Output locations that cannot be written give one line naming the path, never a traceback.

Two real failures are used. Unwritable: a folder with mode 0555 when the tests run as a normal
user; as root (who ignores permission bits) a folder under a regular file (ENOTDIR), the other
way a mistyped output path fails. Full: a child process with RLIMIT_FSIZE, where a write past the
limit fails with EFBIG exactly as a full disk fails with ENOSPC (Python ignores SIGXFSZ).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.errors import OutputError, SynthmedError
from components.io import atomic_dir, atomic_write_bytes, atomic_write_json


@pytest.fixture()
def unwritable(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(a folder path nothing can be written under, the strerror writing there gives)."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        yield locked / "out", "Permission denied"
        locked.chmod(0o755)
    else:
        (tmp_path / "blocker").write_text("a file, not a folder")
        yield tmp_path / "blocker" / "out", "Not a directory"


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    assert isinstance(exc, SynthmedError)
    return text


def test_atomic_write_to_an_unwritable_place(unwritable: tuple[Path, str]) -> None:
    folder, reason = unwritable
    with pytest.raises(OutputError) as info:
        atomic_write_json(folder / "metrics.json", {"a": 1})
    assert _one_line(info.value).startswith(f"{folder / 'metrics.json'}: cannot write ({reason}")


def test_atomic_dir_in_an_unwritable_place(unwritable: tuple[Path, str]) -> None:
    folder, reason = unwritable
    with pytest.raises(OutputError) as info, atomic_dir(folder / "lesions") as tmp:
        (tmp / "never.txt").write_text("the body does not run")
    assert _one_line(info.value).startswith(f"{folder / 'lesions'}: cannot write ({reason}")


def test_the_failing_parent_is_named_when_it_is_not_the_target(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(tmp_path / "blocker" / "a" / "b.bin", b"x")
    assert str(info.value) == (
        f"{tmp_path / 'blocker/a/b.bin'}: cannot write (Not a directory: {tmp_path / 'blocker/a'})"
    )


def test_reading_errors_inside_atomic_dir_stay_what_they_are(tmp_path: Path) -> None:
    """Only failures to write the output become OutputError; a missing input is not one."""
    with pytest.raises(FileNotFoundError), atomic_dir(tmp_path / "out"):
        (tmp_path / "no-such-input.csv").read_bytes()
    assert not list(tmp_path.iterdir())


_FULL = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from components.errors import SynthmedError
    from components.io import atomic_dir, atomic_write_bytes

    out = Path(sys.argv[1])
    try:
        if sys.argv[2] == "dir":
            with atomic_dir(out) as tmp:
                (tmp / "cache.bin").write_bytes(b"x" * 200_000)
        else:
            atomic_write_bytes(out / "cache.bin", b"x" * 200_000)
    except SynthmedError as exc:
        print(exc)
        sys.exit(2)
    """
)


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_a_full_disk_is_one_line_and_leaves_the_old_output(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "ingest"
    out.mkdir()
    (out / "cache.bin").write_bytes(b"old")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    proc = subprocess.run(
        [sys.executable, "-c", _FULL, str(out), kind],
        preexec_fn=limit,  # the child is single-threaded until exec
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    target = out if kind == "dir" else out / "cache.bin"
    assert proc.stdout.strip() == f"{target}: cannot write (File too large)"
    assert (out / "cache.bin").read_bytes() == b"old"
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert leftovers == []
