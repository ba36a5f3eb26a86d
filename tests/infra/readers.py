"""Offline readers of infra/: Terraform files, start-up templates, systemd units.

Nothing here talks to AWS or downloads anything: python-hcl2 parses the Terraform files as they
are, and `render_template` plays Terraform's `templatefile()` for exactly the features the
templates use (``${name}`` substitutions and ``$${`` escapes), failing on anything else so a
template cannot silently grow an expression these tests never rendered.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
TERRAFORM_DIR = INFRA / "terraform"
TEMPLATES_DIR = INFRA / "templates"
SYSTEMD_DIR = INFRA / "systemd"
RAY_CLUSTER = INFRA / "ray" / "cluster.yaml"

# Plain strings for literals ("required", not '"required"'), plain dicts for blocks; expressions
# stay as "${...}" strings.
_HCL = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)


@cache
def terraform() -> dict[str, list[dict[str, Any]]]:
    """Every top-level block of every ``*.tf`` file, by kind (``resource``, ``variable``...)."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        parsed = hcl2.loads(path.read_text(), serialization_options=_HCL)
        for kind, items in parsed.items():
            if not kind.startswith("__"):
                merged.setdefault(kind, []).extend(items)
    return merged


def _labelled(kind: str, label: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in terraform().get(kind, []):
        out.update(item.get(label, {}))
    return out


def resources(resource_type: str) -> dict[str, dict[str, Any]]:
    """``name -> body`` of every ``resource "<resource_type>" "<name>"``."""
    return _labelled("resource", resource_type)


def data_sources(data_type: str) -> dict[str, dict[str, Any]]:
    """``name -> body`` of every ``data "<data_type>" "<name>"``."""
    return _labelled("data", data_type)


def all_resources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(type, name, body)`` of every resource."""
    for item in terraform().get("resource", []):
        for resource_type, by_name in item.items():
            for name, body in by_name.items():
                yield resource_type, name, body


def variables() -> dict[str, dict[str, Any]]:
    """``name -> body`` of every variable."""
    out: dict[str, dict[str, Any]] = {}
    for item in terraform().get("variable", []):
        out.update(item)
    return out


def locals_() -> dict[str, Any]:
    """Every ``locals`` entry of every file."""
    out: dict[str, Any] = {}
    for item in terraform().get("locals", []):
        out.update(item)
    return out


def outputs() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in terraform().get("output", []):
        out.update(item)
    return out


def one(block: Any) -> dict[str, Any]:
    """The single body of a nested block (python-hcl2 gives blocks as lists)."""
    assert isinstance(block, list) and len(block) == 1, block
    return block[0]


def walk(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, leaf)`` of every scalar inside a parsed block."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*path, str(index)))
    else:
        yield path, value


# --- templatefile() ------------------------------------------------------------------------------

_TEMPLATE_CALL = re.compile(
    r'templatefile\("\$\{path\.module\}/\.\./(?P<path>[^"]+)",\s*\{(?P<args>[^{}]*)\}\)'
)
_TEMPLATE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNESCAPED_OPEN = re.compile(r"(?<!\$)\$\{")


def templatefile_calls() -> list[tuple[Path, set[str]]]:
    """``(template, names passed)`` of every ``templatefile()`` call in the Terraform files."""
    calls = []
    for _, _, body in all_resources():
        for _, leaf in walk(body):
            if isinstance(leaf, str):
                for match in _TEMPLATE_CALL.finditer(leaf):
                    names = set(re.findall(r"(?:^|,)\s*(\w+)\s*=", match["args"]))
                    calls.append((INFRA / match["path"], names))
    return calls


def template_variables(text: str) -> set[str]:
    """Names the template substitutes (``${name}``; ``$${...}`` is the shell's own)."""
    return set(_TEMPLATE_VAR.findall(text))


def render_template(text: str, values: Mapping[str, object]) -> str:
    """Render like Terraform's ``templatefile()``, for ``${name}`` and ``$${`` only.

    Raises:
        ValueError: on a ``%{...}`` directive, an expression other than a bare name, or a name
            missing from ``values``: all things this renderer would get wrong.
    """
    if "%{" in text.replace("%%{", ""):
        raise ValueError("template directives (%{...}) are not supported by this renderer")
    missing = template_variables(text) - set(values)
    if missing:
        raise ValueError(f"no value for template variable(s) {sorted(missing)}")
    rendered = _TEMPLATE_VAR.sub(lambda m: str(values[m.group(1)]), text)
    leftover = _UNESCAPED_OPEN.search(rendered)
    if leftover:
        line = rendered[: leftover.start()].count("\n") + 1
        raise ValueError(f"unrendered template expression at line {line}")
    return rendered.replace("$${", "${").replace("%%{", "%{")


# Values a real `terraform apply` would pass, shaped like the real ones.
SAMPLE_VALUES: dict[str, object] = {
    "git_url": "https://github.com/example/synthmed.git",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "data_volume_id": "vol-0123456789abcdef0",
    "public_address": "203.0.113.10",
    "server_host": "10.42.0.10",
    "mlflow_port": 5000,
    "prefect_port": 4200,
    "mlflow_artifacts_url": "s3://synthmed-example/mlflow",
    "region": "us-east-1",
}


# --- systemd units -------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``section -> key -> values`` of a unit file (keys may repeat, e.g. ``EnvironmentFile=``)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (comments and blank lines skipped), as systemd and `sh` read them."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {line}"
            env[key] = value
    return env


def load_module(path: Path) -> ModuleType:
    """Import a script of infra/ (not a package) by its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
