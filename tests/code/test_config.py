"""The configuration schema: profiles, overrides and one-line errors for typos."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import Config, load_config, resolve, section_params
from components.errors import ConfigError


@pytest.fixture()
def raw(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


def test_project_params_resolve_every_profile(repo_root: Path) -> None:
    demo = load_config(repo_root / "params.yaml", "demo")
    full = load_config(repo_root / "params.yaml", "full")
    assert demo.profile == "demo" and full.profile == "full"
    assert demo.gan.steps < full.gan.steps
    assert demo.out_dir == Path("build/demo")


def test_profile_overlay_is_deep_merged(raw: dict) -> None:
    cfg = resolve(raw, "demo")
    # The overlay sets sizes only; the base keeps the rest of the lesions section.
    assert cfg.data.lesions.sizes == [64]
    assert cfg.data.lesions.source == raw["data"]["lesions"]["source"]


def test_typo_in_inactive_profile_is_an_error_naming_the_key(raw: dict) -> None:
    raw["profiles"]["full"]["gan"]["stpes"] = 10
    with pytest.raises(ConfigError) as err:
        resolve(raw, "demo")
    msg = str(err.value)
    assert "profiles.full.gan.stpes: unknown key (did you mean 'steps'?)" in msg
    assert "\n" not in msg


def test_typo_in_base_section_names_the_key(raw: dict) -> None:
    raw["evaluate"]["epoch"] = 3
    with pytest.raises(ConfigError, match=r"evaluate\.epoch: unknown key \(did you mean 'epochs'"):
        resolve(raw)


def test_wrong_type_names_field_and_value(raw: dict) -> None:
    raw["gan"]["batch_size"] = "big"
    with pytest.raises(ConfigError, match=r"gan\.batch_size: .*'big'"):
        resolve(raw)


def test_unknown_profile(raw: dict) -> None:
    with pytest.raises(ConfigError, match="profile 'gpu' is not defined"):
        resolve(raw, "gpu")


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 1\ngan: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: line \d+ not valid YAML"):
        load_config(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_apply_to_the_chosen_profile(repo_root: Path) -> None:
    cfg = load_config(repo_root / "params.yaml", "demo", overrides={"gan": {"steps": 7}})
    assert cfg.gan.steps == 7
    assert cfg.gan.base_channels == 32  # the demo overlay still applies


def test_every_field_is_documented() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                missing += [f"{name}.{m}" for m in walk(ann)]
            elif not field.description:
                missing.append(name)
        return missing

    assert walk(Config) == []


def test_config_is_frozen_and_flattens_for_mlflow() -> None:
    cfg = Config()
    with pytest.raises(Exception):
        cfg.seed = 3  # type: ignore[misc]
    flat = section_params(cfg)
    assert flat["gan.lr_g"] == str(cfg.gan.lr_g)
    assert flat["data.lesions.sizes"] == str(cfg.data.lesions.sizes)
