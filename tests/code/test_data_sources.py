"""Sources: local folders and a real S3 API (moto's threaded server), and their error messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.config import Config, S3Config
from components.data import ingest, open_source
from components.errors import DataError

BUCKET = "synthmed-raw"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with test credentials and an empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.delenv("AWS_PROFILE", raising=False)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=BUCKET
        )
        yield endpoint
    server.stop()


def _legacy_files(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"ISIC_{i:07d}"
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            folder / f"{name}.jpg"
        )
        label = "malignant" if i == 0 else "benign"
        doc = {"name": name, "meta": {"clinical": {"benign_malignant": label, "age_approx": 40}}}
        (folder / f"{name}.json").write_text(json.dumps(doc))


def test_local_source_lists_relative_keys_without_dotfiles(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.json").write_bytes(b"{}")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    source = open_source(str(tmp_path))

    assert source.keys() == ["b.json", "sub/a.jpg"]
    assert source.read("sub/a.jpg") == b"x"


def test_local_source_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"^{tmp_path / 'nope'}: folder not found$"):
        open_source(str(tmp_path / "nope")).keys()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: folder is empty$"):
        open_source(str(tmp_path / "empty")).keys()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("no images here")
    cfg = Config.model_validate({"data": {"lesions": {"source": str(tmp_path / "texts")}}})
    with pytest.raises(DataError, match="texts: no images found$"):
        ingest("lesions", cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_ingest_from_s3_matches_local(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    local = tmp_path / "isic"
    _legacy_files(local)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for path in sorted(local.iterdir()):
        client.put_object(Bucket=BUCKET, Key=f"isic/{path.name}", Body=path.read_bytes())
    # A sibling prefix that merely starts with the same letters must not leak in.
    client.put_object(Bucket=BUCKET, Key="isic-old/ISIC_9999999.jpg", Body=b"x")

    def run(source: str, out: str) -> object:
        cfg = Config.model_validate(
            {
                "data": {
                    "lesions": {"source": source, "sizes": [8]},
                    "s3": {"endpoint_url": s3_endpoint},
                }
            }
        )
        return ingest("lesions", cfg, tmp_path / out)

    remote = run(f"s3://{BUCKET}/isic", "s3").manifest
    on_disk = run(str(local), "local").manifest

    assert remote["source_path"].tolist() == [
        f"s3://{BUCKET}/isic/ISIC_{i:07d}.jpg" for i in range(3)
    ]
    same = [c for c in remote.columns if c != "source_path"]
    assert remote[same].equals(on_disk[same])
    assert remote["label"].tolist() == ["malignant", "benign", "benign"]


def test_s3_errors_name_the_uri(s3_endpoint: str) -> None:
    s3 = S3Config(endpoint_url=s3_endpoint)
    with pytest.raises(
        DataError, match=f"^s3://{BUCKET}/does/not/exist: no objects under this prefix$"
    ):
        open_source(f"s3://{BUCKET}/does/not/exist", s3).keys()
    with pytest.raises(DataError, match="^s3://no-such-bucket/x: .*bucket"):
        open_source("s3://no-such-bucket/x", s3).keys()
    with pytest.raises(DataError, match="no bucket name"):
        open_source("s3:///prefix", s3)
