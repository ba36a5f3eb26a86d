"""Versioning synthetic sets: real DVC, a real git repo, a folder remote and a moto S3 server."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from components.config import VersioningConfig
from components.errors import DataError, SynthmedError
from components.imageset import ImageSet
from components.synthetic import content_digest, read_set, set_name, write_set
from components.versioning import (
    configure_remote,
    ensure_repo,
    list_versions,
    publish_set,
    pull_set,
)

RECORD = {"generator_model_version": "3", "source_manifest_sha256": "ab" * 32}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _samples(seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(
        images=rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8),
        labels=np.array([0, 1, 1]),
        masks=rng.integers(0, 2, (3, 8, 8), dtype=np.uint8),
    )


def _write(root: Path, cfg: VersioningConfig, samples: ImageSet) -> Path:
    name = set_name("dcgan", 8, "demo", content_digest(samples))
    return write_set(samples, root / cfg.sets_dir / name, {"generator_kind": "dcgan"})


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A fresh git repo made a DVC repo."""
    root = tmp_path / "project"
    root.mkdir()
    _git(root, "init", "-q")
    ensure_repo(root)
    return root


@pytest.fixture()
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 API (moto server on 127.0.0.1) with bucket ``sets``; credentials in env only."""
    import boto3
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="sets")
    yield endpoint
    server.stop()


def test_ensure_repo_refuses_a_folder_that_is_not_a_git_root(tmp_path: Path) -> None:
    with pytest.raises(SynthmedError, match=re.escape(f"{tmp_path}: not the root of a git")):
        ensure_repo(tmp_path)
    assert not (tmp_path / ".dvc").exists()


@pytest.mark.slow
def test_publish_to_folder_remote_then_republish_is_idempotent(project: Path) -> None:
    cfg = VersioningConfig(remote_url="../store")
    set_dir = _write(project, cfg, _samples())

    version = publish_set(project, set_dir, cfg, RECORD)  # configures the remote itself

    dvc_conf = (project / ".dvc" / "config").read_text()
    assert "url = ../../store" in dvc_conf  # stored relative to .dvc/, valid in every clone
    assert "remote = synthmed" in dvc_conf and "autostage = False" in dvc_conf
    out = yaml.safe_load(version.dvc_file.read_text())["outs"][0]
    assert version.dvc_file == set_dir.with_name(set_dir.name + ".dvc")
    assert out["path"] == set_dir.name and out["md5"] == version.md5
    assert version.md5.endswith(".dir") and version.pushed and version.name == set_dir.name
    # DVC's .dir object lists every file of the set with its md5; it is in the cache and, pushed,
    # on the remote.
    digest = version.md5.removesuffix(".dir")
    listing = json.loads(
        (project / ".dvc/cache/files/md5" / digest[:2] / f"{digest[2:]}.dir").read_text()
    )
    assert {e["relpath"]: e["md5"] for e in listing} == {
        name: hashlib.md5(data).hexdigest() for name, data in _files(set_dir).items()
    }
    assert (project.parent / "store/files/md5" / digest[:2] / f"{digest[2:]}.dir").is_file()
    assert f"/{set_dir.name}" in (set_dir.parent / ".gitignore").read_text().splitlines()
    [record] = list_versions(project, cfg)
    assert record["name"] == set_dir.name and record["md5"] == version.md5
    assert record["dvc_file"] == f"data/synthetic/{set_dir.name}.dvc"
    assert record["generator_model_version"] == "3" and record["remote"] == "../store"
    assert record["created_at"]

    # Republishing changes no committed file; the two synthmed writes are not even rewritten
    # (DVC itself rewrites the .dvc file, with the same bytes).
    ours = [project / cfg.sets_dir / "versions.json", project / ".dvc" / "config"]
    before = [(f.read_bytes(), f.stat().st_mtime_ns) for f in ours], version.dvc_file.read_bytes()
    again = publish_set(project, _write(project, cfg, _samples()), cfg, RECORD)
    assert again == version
    assert (
        [(f.read_bytes(), f.stat().st_mtime_ns) for f in ours],
        version.dvc_file.read_bytes(),
    ) == before

    other = publish_set(project, _write(project, cfg, _samples(seed=1)), cfg, RECORD)
    assert other.md5 != version.md5
    assert [v["name"] for v in list_versions(project, cfg)] == [version.name, other.name]


@pytest.mark.slow
def test_s3_publish_commit_clone_and_pull_gives_identical_files(
    project: Path, tmp_path: Path, s3_endpoint: str
) -> None:
    import boto3

    cfg = VersioningConfig(remote_url="s3://sets/synthmed", endpoint_url=s3_endpoint)
    configure_remote(project, cfg)
    samples = _samples()
    set_dir = _write(project, cfg, samples)

    version = publish_set(project, set_dir, cfg, RECORD)

    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="sets")[
            "Contents"
        ]
    ]
    assert len(keys) == len(_files(set_dir)) + 1  # every file and the .dir listing
    config_text = (project / ".dvc" / "config").read_text()
    assert f"endpointurl = {s3_endpoint}" in config_text and "testing" not in config_text
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "publish synthetic set")
    tracked = _git(project, "ls-files").splitlines()
    assert f"data/synthetic/{set_dir.name}.dvc" in tracked
    assert not [f for f in tracked if f.startswith(f"data/synthetic/{set_dir.name}/")]
    clone = tmp_path / "colleague"
    _git(tmp_path, "clone", "-q", str(project), str(clone))

    pulled = pull_set(clone, version.name, cfg)

    assert pulled == clone / cfg.sets_dir / version.name
    assert _files(pulled) == _files(set_dir)
    np.testing.assert_array_equal(read_set(pulled).masks, samples.masks)


@pytest.mark.slow
def test_push_to_missing_bucket_names_the_remote(project: Path, s3_endpoint: str) -> None:
    cfg = VersioningConfig(remote_url="s3://no-such-bucket/sets", endpoint_url=s3_endpoint)
    configure_remote(project, cfg)
    set_dir = _write(project, cfg, _samples())

    with pytest.raises(SynthmedError, match=r"s3://no-such-bucket/sets.*bucket") as info:
        publish_set(project, set_dir, cfg, RECORD)
    assert "\n" not in str(info.value)
    assert list_versions(project, cfg) == []  # an unpushed set is not recorded as published


def test_pull_of_unknown_version_lists_known_ones(project: Path) -> None:
    cfg = VersioningConfig(push=False)
    configure_remote(project, cfg)
    version = publish_set(project, _write(project, cfg, _samples()), cfg, RECORD)
    assert not version.pushed

    with pytest.raises(DataError, match=rf"unknown set version 'nope' \(known: {version.name}\)"):
        pull_set(project, "nope", cfg)
