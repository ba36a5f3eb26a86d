"""dvc.yaml's code deps cover what each stage really imports, so a code change re-runs it.

The imports are read statically (``ast``): from the stage function in ``components/stages.py``
(its own lazy imports plus the module's top-level ones), then transitively through every
``components`` module reached, counting imports inside functions too. That over-approximates
what a run executes, which errs on the side of re-running.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imports(tree: ast.AST, package: str) -> set[str]:
    """``components`` modules named by the import statements under ``tree``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # `from components.data import manifest` imports a module too.
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "components" and _module_file(m)}


def _closure(start: set[str]) -> set[Path]:
    # stages.py itself is read by stage_imports (one function's imports, not all of them).
    seen: set[str] = {"components.stages"}
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        file = _module_file(name)
        assert file is not None
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        todo += list(_imports(ast.parse(file.read_text()), package))
    return {_module_file(n) for n in seen}  # type: ignore[misc]


def stage_imports(stage: str) -> set[Path]:
    """Every components file the stage function can import (transitively)."""
    tree = ast.parse((ROOT / "components" / "stages.py").read_text())
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == stage)
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    start = _imports(func, "components") | _imports(ast.Module(body=top, type_ignores=[]), "components")
    return _closure(start - {"components.stages"})


def _dvc_stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: spec["do"] if "do" in spec else spec for name, spec in stages.items()}


STAGE_FUNCTIONS = {
    "ingest": "ingest", "validate": "validate", "train": "train",
    "generate": "generate", "evaluate": "evaluate", "promote": "promote",
}  # fmt: skip


@pytest.mark.parametrize("stage", list(STAGE_FUNCTIONS))
def test_code_deps_cover_every_imported_component_module(stage: str) -> None:
    spec = _dvc_stages()[stage]
    deps = [ROOT / d for d in spec.get("deps", []) if not str(d).startswith(("${", "build/"))]
    uncovered = sorted(
        str(f.relative_to(ROOT))
        for f in stage_imports(STAGE_FUNCTIONS[stage])
        if not any(f == d or d in f.parents for d in deps)
    )
    assert not uncovered, f"dvc.yaml stage '{stage}' misses code deps: {uncovered}"


def test_the_import_reader_sees_lazy_and_relative_imports() -> None:
    files = {str(f.relative_to(ROOT)) for f in stage_imports("promote")}
    # promote imports components.registry inside the function body.
    assert "components/registry.py" in files and "components/config.py" in files
