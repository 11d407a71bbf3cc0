"""The package layers of docs/ARCHITECTURE.md: no module imports from a layer above its own.

Imports are read from the source with `ast` (top-level and function-local imports alike), so a lazy import inside a
function cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# lowest first; a module may import from its own layer and the layers before it
LAYERS = ("core", "geometry", "datasets", "model", "evaluation", "training", "video", "cli")
SCRIPT_FOLDERS = ("data", "inference", "benchmarks")


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "common" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def library_modules() -> list[Path]:
    return sorted((ROOT / "common").rglob("*.py"))


def test_every_library_module_is_in_a_layer():
    for path in library_modules():
        relative = path.relative_to(ROOT / "common")
        if relative == Path("__init__.py"):
            continue
        assert len(relative.parts) == 2 and relative.parts[0] in LAYERS, f"common/{relative}: not in a layer package"


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_from_a_higher_layer(path):
    own = layer_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
    if own is None:
        return
    upward = [f"line {line}: {module} ({LAYERS[layer_of(module)]})" for line, module in imported_modules(path)
              if layer_of(module) is not None and layer_of(module) > own]
    assert not upward, f"{path.relative_to(ROOT)} ({LAYERS[own]}) imports from a higher layer: {upward}"


def test_library_never_imports_the_scripts():
    for path in library_modules():
        scripts = [m for _, m in imported_modules(path) if m.split(".")[0] in SCRIPT_FOLDERS + ("run",)]
        assert not scripts, f"{path.relative_to(ROOT)} imports command-line scripts: {scripts}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule itself: a geometry module importing the model layer is reported (guards against a checker that
    never fires, e.g. after a rename of the layer list)."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from common.model.metaformer import build_model\n    return build_model\n")
    (line, name), = imported_modules(module)
    assert (line, name) == (2, "common.model.metaformer")
    assert layer_of(name) > layer_of("common.geometry.camera")
