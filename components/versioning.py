"""Versioning synthetic sets with DVC: add, push to a shared remote, list, pull by name.

A published set is three things: the folder (in DVC's cache and on the remote), its ``.dvc``
file (committed to git; it holds DVC's md5 of the folder) and a record in
``<sets_dir>/versions.json`` (committed to git; provenance for people and for MLflow tags). The
remote's URL lives in ``.dvc/config``, which is committed too, so a colleague's clone can pull a
set with nothing configured but credentials (AWS_* variables or ``dvc remote modify --local``):
credentials are never written here.

DVC's Python API (:class:`dvc.repo.Repo`) is used in-process. Calling this from a stage that
``dvc repro`` runs is fine: DVC releases its repo lock while a stage command runs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.config import VersioningConfig
from components.errors import DataError, SynthmedError
from components.io import atomic_write_json
from components.synthetic import read_meta

if TYPE_CHECKING:
    from dvc.repo import Repo

VERSIONS_FILE = "versions.json"
LINEAGE_KEYS = ("generator_model_version", "source_manifest_sha256")
"""Record fields taken from the set's ``set.json`` when the caller's record lacks them."""


@dataclass(frozen=True)
class SetVersion:
    """A published set. ``path`` and ``dvc_file`` are absolute; ``md5`` is DVC's (``...dir``)."""

    name: str
    path: Path
    dvc_file: Path
    md5: str
    pushed: bool
    remote_url: str


def ensure_repo(root: Path) -> None:
    """Make ``root`` (a git work tree) a DVC repo if it is not one; autostage and analytics off.

    Autostage stays off because the lead decides what is committed; analytics off because
    nothing synthmed runs may phone home.
    """
    root = Path(root)
    if not _is_git_root(root):
        raise SynthmedError(
            f"{root}: not the root of a git repository; DVC versions sets next to git "
            "(run `git init` there, or point the project root at your clone)"
        )
    from dvc.repo import Repo

    if not (root / ".dvc").is_dir():
        with _dvc_errors(f"dvc init in {root}"):
            Repo.init(os.fspath(root)).close()

    def change(conf: dict[str, Any]) -> None:
        conf["core"]["autostage"] = False
        conf["core"]["analytics"] = False

    _update_config(root, change)


def configure_remote(root: Path, cfg: VersioningConfig) -> None:
    """Make ``cfg.remote_name`` the default remote of ``root``'s DVC repo, at ``cfg.remote_url``.

    Written to ``.dvc/config`` (committed, shared). A relative folder is relative to ``root``;
    an ``s3://`` URL gets ``endpointurl`` when ``cfg.endpoint_url`` is set. Other settings of
    the remote (e.g. a region someone added) are kept.
    """
    from dvc.config_schema import RelPath

    url: str = cfg.remote_url
    if "://" not in url and not Path(url).expanduser().is_absolute():
        # RelPath tells DVC the path is relative to the project, so it is stored relative to
        # .dvc/ and resolves in every clone; a plain relative str would be taken from the cwd.
        url = RelPath(os.fspath((Path(root) / url).resolve()))

    def change(conf: dict[str, Any]) -> None:
        remote = conf["remote"].setdefault(cfg.remote_name, {})
        remote["url"] = url
        if url.startswith("s3://") and cfg.endpoint_url:
            remote["endpointurl"] = cfg.endpoint_url
        else:
            remote.pop("endpointurl", None)
        conf["core"]["remote"] = cfg.remote_name

    _update_config(root, change)


def publish_set(
    root: Path, set_dir: Path, cfg: VersioningConfig, record: dict[str, Any]
) -> SetVersion:
    """``dvc add`` the set at ``set_dir``, push it when ``cfg.push``, record it in versions.json.

    ``record`` holds the caller's provenance (generator model version, source manifest sha256,
    run ids...); the set's name, md5, paths, remote and ``created_at`` are added. Publishing an
    unchanged set again is a no-op on disk: same md5, its record (and created_at) kept.

    The repo and remote are first brought in line with ``cfg`` (:func:`ensure_repo`,
    :func:`configure_remote`), so params.yaml stays the one place the remote is set and a stage
    needs this one call. If the push fails, the set stays added (its .dvc file written) but is
    not recorded in versions.json: publishing again after fixing the remote completes it.
    """
    root = Path(root).resolve()
    set_dir = Path(set_dir).resolve()
    meta = read_meta(set_dir)
    ensure_repo(root)
    configure_remote(root, cfg)
    # Locked throughout, so two publishers cannot interleave their versions.json updates.
    with _repo(root, locked=True) as repo:
        with _dvc_errors(f"dvc add {set_dir}"):
            repo.add(os.fspath(set_dir))
        dvc_file = set_dir.with_name(set_dir.name + ".dvc")
        md5 = _dir_md5(dvc_file)
        if cfg.push:
            with _transfer_errors(f"dvc push to remote '{cfg.remote_name}' ({cfg.remote_url})"):
                repo.push(targets=[os.fspath(dvc_file)], remote=cfg.remote_name)
        entry = {
            **{key: meta.get(key) for key in LINEAGE_KEYS},
            **record,
            "name": set_dir.name,
            "md5": md5,
            "path": set_dir.relative_to(root).as_posix(),
            "dvc_file": dvc_file.relative_to(root).as_posix(),
            "remote": cfg.remote_url,
        }
        _record(root, cfg, entry)
    return SetVersion(set_dir.name, set_dir, dvc_file, md5, cfg.push, cfg.remote_url)


def list_versions(root: Path, cfg: VersioningConfig) -> list[dict[str, Any]]:
    """The records of ``<sets_dir>/versions.json``, oldest first ([] when none yet)."""
    file = Path(root) / cfg.sets_dir / VERSIONS_FILE
    if not file.exists():
        return []
    try:
        versions = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: corrupt versions file ({exc})") from None
    if not isinstance(versions, list):
        raise DataError(f"{file}: corrupt versions file (expected a JSON list)")
    return versions


def pull_set(root: Path, name: str, cfg: VersioningConfig) -> Path:
    """Fetch the set ``name`` from the remote into the work tree; returns its folder.

    Uses the remote recorded in ``.dvc/config``, so a fresh clone needs only credentials.
    """
    root = Path(root).resolve()
    versions = {v["name"]: v for v in list_versions(root, cfg)}
    if name not in versions:
        known = ", ".join(sorted(versions)) or "none"
        raise DataError(
            f"{root / cfg.sets_dir / VERSIONS_FILE}: unknown set version '{name}' (known: {known})"
        )
    version = versions[name]
    with _repo(root) as repo:
        url = repo.config["remote"].get(cfg.remote_name, {}).get("url", cfg.remote_url)
        with _transfer_errors(f"dvc pull of '{name}' from remote '{cfg.remote_name}' ({url})"):
            repo.pull(targets=[os.fspath(root / version["dvc_file"])], remote=cfg.remote_name)
    return root / version["path"]


def _update_config(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the repo's ``.dvc/config``, writing only if it changes a setting.

    ``.dvc/config`` is committed and :func:`publish_set` calls this on every publish: rewriting
    an unchanged file would only churn its mtime (and wake up file watchers).
    """
    from dvc.config import Config

    with _repo(root) as repo:
        current = repo.config.read("repo")
        wanted = copy.deepcopy(current)
        change(wanted)
        # Compared validated, where "False" read from the file equals the False we set.
        if Config.validate(wanted) == Config.validate(current):
            return
        with _dvc_errors(f"writing {root}/.dvc/config"), repo.config.edit() as conf:
            change(conf)


def _record(root: Path, cfg: VersioningConfig, entry: dict[str, Any]) -> None:
    """Append ``entry`` to versions.json, or replace the record of the same name.

    An unchanged set (same name and md5) keeps its old record, so republishing does not churn
    a file that is committed to git.
    """
    versions = list_versions(root, cfg)
    old = next((v for v in versions if v["name"] == entry["name"]), None)
    if old is not None and old.get("md5") == entry["md5"]:
        return
    entry["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    versions = [v for v in versions if v["name"] != entry["name"]] + [entry]
    atomic_write_json(Path(root) / cfg.sets_dir / VERSIONS_FILE, versions)


def _dir_md5(dvc_file: Path) -> str:
    outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
    return str(outs[0]["md5"])


def _is_git_root(root: Path) -> bool:
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return Path(top).resolve() == root.resolve()


@contextlib.contextmanager
def _repo(root: Path, locked: bool = False) -> Iterator[Repo]:
    """The DVC repo at ``root``, closed afterwards (it holds sqlite handles).

    ``locked`` holds DVC's repo lock for the whole block; DVC's own commands inside it see the
    lock as theirs (``lock_repo`` counts depth) instead of waiting for it.
    """
    from dvc.repo import Repo, lock_repo

    with _dvc_errors(f"opening the DVC repo at {root}"):
        repo = Repo(os.fspath(root))
    # Its "To track the changes with git, run: ..." hint is noise in a pipeline: the lead
    # commits the .dvc and versions.json files, and autostage is off on purpose.
    repo.scm_context.quiet = True
    with repo, contextlib.ExitStack() as stack:
        if locked:
            with _dvc_errors(f"locking the DVC repo at {root}"):
                stack.enter_context(lock_repo(repo))
        yield repo


@contextlib.contextmanager
def _dvc_errors(action: str) -> Iterator[None]:
    """Turn a DVC failure into one SynthmedError line naming ``action`` and DVC's reason."""
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise SynthmedError(f"{action} failed: {_first_line(exc)}") from exc


@contextlib.contextmanager
def _transfer_errors(action: str) -> Iterator[None]:
    """Like :func:`_dvc_errors` for push/pull, which fail with whatever the remote's backend
    raises.

    s3fs raises FileNotFoundError for a missing bucket, botocore its own ConnectionError for an
    unreachable endpoint, DVC an UploadError for partial failures: there is no common base, and
    all of them mean the remote did not take or give the data. The cause stays chained.
    """
    try:
        yield
    except Exception as exc:
        raise SynthmedError(f"{action} failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0] if text else ""
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
