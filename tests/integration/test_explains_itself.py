"""Every set and model explains itself: dataset cards, MLflow as its users expect, the generator
zoo and reproduce, on one tiny project run once through `dvc repro` against a real `mlflow
server` (PostgreSQL), plus a tiny SinGAN-Seg registered through the same registry code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import fresh_database
from tests.integration.servers import BIN, free_port, spawn, stop, wait_http
from tests.project import make_project

pytestmark = [pytest.mark.slow, pytest.mark.server]

CARD_KEYS = {"card_version", "set", "generator", "statistics", "fidelity", "memorization",
             "intended_use", "limitations", "licence", "citation"}  # fmt: skip


def _api(uri: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/{path}", data=data,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "synthmed"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("explains")
    project = make_project(tmp / "project", polyps=4)
    with fresh_database("synthmed_cards") as db:
        port, log = free_port(), tmp / "mlflow.log"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = spawn([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                      "--workers", "1", "--backend-store-uri",
                      f"postgresql://postgres@127.0.0.1:5432/{db}",
                      "--artifacts-destination", str(tmp / "artifacts")], env, log)  # fmt: skip
        uri = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{uri}/health", proc, 90, log)
            client_env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
                          "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
            done = subprocess.run([str(BIN / "dvc"), "repro"], cwd=project, env=client_env,
                                  capture_output=True, text=True, timeout=1200)  # fmt: skip
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            _register_tiny_singan(project, uri)
            yield {"project": project, "uri": uri, "env": client_env}
        finally:
            stop(proc)


def _register_tiny_singan(project: Path, uri: str) -> None:
    """A SinGAN-Seg of two phantoms at 32 px, a few iterations, registered as the polyp study
    registers its own (components.experiments.polyps.register_singan's code path)."""
    import mlflow

    from components import tracking
    from components.config import load_config
    from components.data.manifest import load_cache
    from components.generators.singan_seg.model import SinganSeg
    from components.imageset import resize
    from components.registry import register_generator
    from components.runtime import make_runtime

    cwd = os.getcwd()
    os.chdir(project)
    try:
        mlflow.set_tracking_uri(uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        cfg = load_config("params.yaml", overrides={"singan": {
            "min_size": 16, "max_size": 32, "scale_factor": 0.5, "nfc": 8, "nfc_max": 8,
            "niter": 3, "d_steps": 1, "g_steps": 1, "log_every": 1}})  # fmt: skip
        data = resize(load_cache(project / "build/demo/ingest/polyps", 64).subset([0, 1]), 32)
        gen = SinganSeg.build(cfg.singan, cfg.seed, make_runtime("cpu"))
        with tracking.start_run(cfg, "polyp-study", run_name="tiny-singan") as rep:
            gen.fit(data, project / "build" / "singan-work", rep)
            weights = project / "build" / "singan-seg.pt"
            gen.save(weights)
            register_generator(rep.run_id, weights, "singan-seg", 32, "synthmed-singan-seg-32",
                               {"data.manifest_sha256": "ab" * 32}, description="tiny test SinGAN-Seg")  # fmt: skip
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.chdir(cwd)


def _set_dir(world: dict) -> Path:
    info = json.loads((world["project"] / "build/demo/generate/set.json").read_text())
    return world["project"] / "data/synthetic" / info["name"]


def test_published_set_carries_a_complete_offline_card(world: dict) -> None:
    set_dir = _set_dir(world)
    files = {p.name for p in set_dir.iterdir()}
    assert {"CARD.md", "card.html", "card.json", "card_samples.png"} <= files
    card = json.loads((set_dir / "card.json").read_text())
    assert CARD_KEYS <= set(card)
    gen = card["generator"]
    assert gen["kind"] == "dcgan" and gen["model_uri"] == "models:/synthmed-dcgan-64/1"
    assert gen["config_digest"] and gen["training_data"]["manifest_sha256"]
    assert gen["training_data"]["dataset"] == "lesions" and gen["training_data"]["source"] == "data/lesions"
    stats = card["statistics"]
    assert sum(stats["synthetic"]["labels"].values()) == stats["synthetic"]["n_images"] == 16
    fid = card["fidelity"]
    for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage"):
        assert np.isfinite(fid[key]), key
    assert fid["features"] == "pixels16" and "lesions train split" in fid["reference"]
    mem = card["memorization"]
    assert mem["verdict"] in {"pass", "fail"} and mem["threshold"] > 0
    assert mem["synthetic_to_train_median"] > 0 and mem["heldout_to_train_median"] > 0
    assert card["intended_use"]["intended"] and card["limitations"]
    # The embedded ISIC images are CC0 (data/samples/isic-uda1/LICENSE.txt, via the manifest).
    assert {s["license"] for s in card["licence"]["sources"]} == {"CC0-1.0"}
    assert card["licence"]["set"].startswith("CC0-1.0")
    assert card["citation"]["bibtex"].startswith("@misc{")
    html = (set_dir / "card.html").read_text()
    assert not re.search(r"https?://|ftp://|<link|<script|@import|url\(", html, re.I)
    refs = re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']*)", html, re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs), refs[:3]
    md = (set_dir / "CARD.md").read_text()
    for heading in ("Generator", "Fidelity and diversity", "Memorization", "Intended use",
                    "Known limitations", "Licence", "How to cite"):  # fmt: skip
        assert f"## {heading}" in md
    # The card is part of what DVC versioned: it is in the set's .dvc-tracked folder and cache.
    cache = world["project"] / ".dvc" / "cache"
    card_md5 = __import__("hashlib").md5((set_dir / "card.json").read_bytes()).hexdigest()
    assert any(cache.rglob(card_md5[2:])), "card.json is not in the DVC cache"
    # The validation report opens offline too.
    report = (world["project"] / "build/demo/validate/lesions/report.html").read_text()
    assert "Expectations" in report and "Quarantine" in report
    assert not re.search(r"https?://|<link|<script", report, re.I)


def test_mlflow_shows_inputs_signatures_descriptions_and_true_tags(world: dict) -> None:
    uri = world["uri"]
    exp = _api(uri, "experiments/get-by-name?experiment_name=synthmed")["experiment"]
    assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.experimentKind"] == "custom_model_development"
    runs = _api(uri, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    train = next(r for n, r in by_name.items() if n.startswith("train-"))
    names = {d["dataset"]["name"] for d in train["inputs"]["dataset_inputs"]}
    assert names == {"lesions-train"}
    arm = by_name["arm-real+synthetic"]["inputs"]["dataset_inputs"]
    contexts = {d["dataset"]["name"]: {t["key"]: t["value"] for t in d["tags"]}["mlflow.data.context"]
                for d in arm}  # fmt: skip
    set_name = _set_dir(world).name
    assert contexts == {"lesions-train": "training", set_name: "training",
                        "lesions-val": "validation", "lesions-test": "testing"}  # fmt: skip
    real = {d["dataset"]["name"] for d in by_name["arm-real"]["inputs"]["dataset_inputs"]}
    assert set_name not in real
    dataset = next(d["dataset"] for d in arm if d["dataset"]["name"] == "lesions-train")
    assert dataset["source_type"] == "local" and dataset["digest"] and "image_id" in dataset["schema"]

    for name in ("synthmed-lesion-classifier", "synthmed-dcgan-64"):
        model = _api(uri, f"registered-models/get?name={name}")["registered_model"]
        assert model.get("description"), name
        version = _api(uri, f"model-versions/get?name={name}&version=1")["model_version"]
        assert version.get("description"), name
        url = f"{uri}/model-versions/get-artifact?path=MLmodel&name={name}&version=1"
        mlmodel = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "signature:" in mlmodel and "inputs:" in mlmodel and "saved_input_example_info" in mlmodel, name
    champion = _api(uri, "registered-models/alias?name=synthmed-lesion-classifier&alias=champion")
    tags = {t["key"]: t["value"] for t in champion["model_version"]["tags"]}
    if tags["synthmed.arm"] == "real":  # the truth: a real-only champion names no set
        assert "synthetic.set_version" not in tags
    else:
        assert tags["synthetic.set_version"] == set_name
    gen = _api(uri, "model-versions/get?name=synthmed-dcgan-64&version=1")["model_version"]
    gtags = {t["key"]: t["value"] for t in gen["tags"]}
    assert gtags["card.set"] == set_name and float(gtags["card.kid"]) == pytest.approx(
        json.loads((_set_dir(world) / "card.json").read_text())["fidelity"]["kid"])


def test_models_lists_filters_and_ranks_registered_generators(world: dict) -> None:
    project, env = world["project"], world["env"]
    everything = _cli(["models", "--json"], project, env)
    assert everything.returncode == 0, everything.stderr
    rows = {r["name"]: r for r in json.loads(everything.stdout)}
    assert set(rows) == {"synthmed-dcgan-64", "synthmed-singan-seg-32"}
    dcgan = rows["synthmed-dcgan-64"]
    assert (dcgan["modality"], dcgan["output"], dcgan["image_size"]) == ("dermoscopy", "image+label", 64)
    assert dcgan["kid"] is not None and dcgan["licence"].startswith("CC0") and "lesions" in dcgan["training_data"]
    polyps = _cli(["models", "--modality", "endoscopy", "--output", "image+mask", "--json"], project, env)
    assert [r["name"] for r in json.loads(polyps.stdout)] == ["synthmed-singan-seg-32"]
    ranked = _cli(["models", "--rank-by", "kid", "--json"], project, env)
    # Only the GAN has a card: ranked first; rows without the figure come last.
    assert [r["name"] for r in json.loads(ranked.stdout)][0] == "synthmed-dcgan-64"
    table = _cli(["models"], project, env)
    assert table.returncode == 0 and "Registered generators (2)" in table.stdout
    assert "dcgan" in table.stdout and "singan-seg" in table.stdout
    bad = _cli(["models", "--rank-by", "beauty"], project, env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--rank-by" in bad.stderr


def test_sample_writes_folders_synthmed_ingests_with_a_card(world: dict, tmp_path: Path) -> None:
    import torch

    import synthmed
    from components.config import load_config
    from components.data.manifest import ingest

    project, env = world["project"], world["env"]
    lesions = tmp_path / "lesions"
    done = _cli(["sample", "synthmed-dcgan-64/1", "-n", "6", "--out", str(lesions), "--label", "malignant"],
                project, env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list(lesions.glob("ISIC_9*.jpg"))) == 6 and (lesions / "card.html").is_file()
    card = json.loads((lesions / "card.json").read_text())
    assert card["statistics"]["synthetic"]["labels"] == {"benign": 0, "malignant": 6}
    assert card["generator"]["model_uri"] == "models:/synthmed-dcgan-64/1"
    assert _set_dir(world).name in card["quality_note"]

    drawn = synthmed.sample("synthmed-singan-seg-32", n=3, out=tmp_path / "polyps", seed=1,
                            tracking_uri=world["uri"])  # fmt: skip
    assert isinstance(drawn.dataset, torch.utils.data.Dataset) and len(drawn.dataset) == 3
    image, mask = drawn.dataset[0]
    assert image.shape == (3, 32, 32) and mask.shape == (1, 32, 32) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert len(list((tmp_path / "polyps/masks").glob("*.png"))) == 3
    assert json.loads((tmp_path / "polyps/card.json").read_text())["set"]["output"] == "image+mask"

    cfg = load_config(project / "params.yaml", overrides={"data": {
        "lesions": {"source": str(lesions)}, "polyps": {"source": str(tmp_path / "polyps")}}})  # fmt: skip
    for dataset in ("lesions", "polyps"):
        got = ingest(dataset, cfg, tmp_path / f"ingested-{dataset}")
        assert len(got.manifest) == (6 if dataset == "lesions" else 3), dataset
        assert not got.manifest["error"].astype(bool).any(), got.manifest["error"].tolist()
    assert set(ingest("lesions", cfg, tmp_path / "again").manifest["label"]) == {"malignant"}

    unconditional = _cli(["sample", "synthmed-singan-seg-32", "-n", "2", "--out", str(tmp_path / "x"),
                          "--label", "benign"], project, env)  # fmt: skip
    assert unconditional.returncode == 2 and "unconditional" in unconditional.stderr


def test_reproduce_rebuilds_the_champion_bit_identically(world: dict) -> None:
    done = _cli(["reproduce", "models:/synthmed-lesion-classifier@champion"], world["project"], world["env"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "identical" in done.stdout and "DIFFERENT" not in done.stdout
    assert "bit-identical expected" in done.stdout


def test_reproduce_names_a_commit_that_does_not_exist(world: dict) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(world["uri"])
    client = MlflowClient()
    champion = client.get_model_version_by_alias("synthmed-lesion-classifier", "champion")
    tags = {**champion.tags, "git.commit": "0" * 40}
    copy = mlflow.register_model(f"runs:/{champion.run_id}/model", "synthmed-lesion-classifier", tags=tags)
    done = _cli(["reproduce", f"models:/synthmed-lesion-classifier/{copy.version}"], world["project"],
                world["env"])  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"git.commit {'0' * 40} does not exist" in done.stderr
