"""The folders are the layers, and imports only go down: no module imports a layer above it
(lazy imports inside functions included), and FiftyOne-only modules load no torch."""

import ast
import pathlib
import subprocess
import sys

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "fiftyone_vog"

#: Lower numbers are lower layers; a module may import its own layer and those below.
LAYERS = {
    "errors": 0,
    "options": 0,
    "engine": 1,
    "inputs": 2,
    "models": 2,  # the stable ``fiftyone_vog.models:SmallCNN`` path of inputs.models
    "core": 3,
    "audit": 4,
    "analysis": 4,
    "report": 5,
    "app": 6,
    "cli": 6,
}


def _layer(parts):
    return LAYERS.get(parts[0]) if parts else None


def _imports(path):
    """``(line, target module parts)`` of every import of this package in ``path``."""
    rel = path.relative_to(PKG).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "fiftyone_vog":
                mod = node.module.split(".")[1:]
            else:
                continue
            if not mod:  # ``from .. import x``: x is a module of the package
                for alias in node.names:
                    yield node.lineno, [alias.name]
            else:
                yield node.lineno, mod
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fiftyone_vog":
                    yield node.lineno, alias.name.split(".")[1:]


def test_no_module_imports_a_layer_above_it():
    upward = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("").parts
        own = _layer(list(rel))
        if own is None:  # fiftyone_vog/__init__.py: the lazy public names of every layer
            continue
        for line, target in _imports(path):
            to = _layer(target)
            if to is not None and to > own:
                upward.append(f"{path.relative_to(PKG.parent)}:{line} imports {'.'.join(target)}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_every_module_has_a_layer():
    tops = {p.relative_to(PKG).with_suffix("").parts[0] for p in PKG.rglob("*.py")} - {"__init__"}
    assert tops <= set(LAYERS), tops - set(LAYERS)


@pytest.mark.parametrize(
    "module", ["fiftyone_vog.audit.views", "fiftyone_vog.audit.export", "fiftyone_vog.app.install"]
)
def test_fiftyone_only_modules_load_no_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", (r.stdout, r.stderr[-2000:])
