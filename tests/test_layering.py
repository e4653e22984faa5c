"""Imports only go down: models and data never import engine or distill; the engine never imports distill;
models and data do not import each other (data knows nothing of models, models nothing of datasets)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pointcept_distill"
FORBIDDEN = {
    "utils": {"data", "models", "engine", "distill"},
    "data": {"models", "engine", "distill"},
    "models": {"data", "engine", "distill"},
    "engine": {"distill"},
}


def imported_layers(path: Path, layer: str) -> set[str]:
    """The pointcept_distill subpackages a module imports (absolute or relative, at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                names = [".".join(parts + ((node.module,) if node.module else ()))]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "pointcept_distill" and len(parts) > 1:
                found.add(parts[1])
    return found - {layer}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_go_down(layer):
    bad = {str(p.relative_to(PACKAGE)): sorted(imported_layers(p, layer) & FORBIDDEN[layer])
           for p in (PACKAGE / layer).rglob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_checker_sees_relative_imports():
    # models/builder.py imports the registry with "from ..utils.registry import Registry"
    assert imported_layers(PACKAGE / "models" / "builder.py", "models") == {"utils"}
