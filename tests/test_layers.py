"""The library's packages form layers, and every import points down.

Two packages that import each other cannot be understood, tested or replaced one at a time
(issue 33: `retrieval` and `crisp`, `retrieval` and `dense` did). Each package below sits in one
layer; a module may import its own package and packages of lower layers only, never a package
of its own layer or of a layer above. A new package must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

LIBRARY = Path(REPO) / "shoematch"

# Lowest first. A top-level module (`config.py`) counts as a package of its own name.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "log", "env"),                                  # no shoematch imports
    ("config", "storage", "tracking"),                         # one of each
    ("saved_model", "data", "augment", "models", "training",   # records, images, bodies,
     "prepare"),                                               # scene-photo analysis
    ("labels", "retrieval"),                                   # label vocabularies; scoring base
    ("evaluation",),                                           # encode, place, report
    ("crisp", "descriptors", "attributes", "dense"),           # the models
    ("index", "cases"),                                        # what serving and cases use
    ("ray",),                                                  # the Ray adapter, on top
]
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def package_of(module: str) -> str | None:
    """`shoematch.crisp.model` → `crisp`; None for something outside the library."""
    parts = module.split(".")
    return parts[1] if parts[0] == "shoematch" and len(parts) > 1 else None


def library_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute `shoematch.…` import in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if package_of(name)]
    return found


def upward_imports(source_package: str, imports: list[tuple[int, str]]) -> list[str]:
    """The imports that do not point to a lower layer (or the module's own package)."""
    wrong = []
    for line, module in imports:
        target = package_of(module)
        assert target is not None
        if target == source_package:
            continue
        if LAYER_OF[target] >= LAYER_OF[source_package]:
            wrong.append(f"line {line}: {source_package} (layer {LAYER_OF[source_package]}) "
                         f"imports {module} (layer {LAYER_OF[target]})")
    return wrong


def library_files() -> list[tuple[str, Path]]:
    files = []
    for path in sorted(LIBRARY.rglob("*.py")):
        relative = path.relative_to(LIBRARY)
        if relative == Path("__init__.py"):
            continue
        package = relative.parts[0].removesuffix(".py")
        files.append((package, path))
    return files


def test_every_package_has_a_layer():
    packages = {package for package, _ in library_files()}
    assert packages - set(LAYER_OF) == set(), "give these packages a layer in LAYERS"
    assert set(LAYER_OF) - packages == set(), "LAYERS names packages that no longer exist"


def test_every_import_points_down():
    wrong = []
    for package, path in library_files():
        wrong += [f"{path.relative_to(REPO)} {problem}"
                  for problem in upward_imports(package, library_imports(path))]
    assert not wrong, "\n".join(wrong)


def test_an_upward_or_sideways_import_is_caught():
    """The check can fail: the imports issue 33 removed are each reported."""
    assert upward_imports("retrieval", [(20, "shoematch.dense.calibration")])
    assert upward_imports("evaluation", [(11, "shoematch.crisp.model")])
    assert upward_imports("attributes", [(16, "shoematch.descriptors.channels")])
    assert not upward_imports("crisp", [(1, "shoematch.retrieval.scoring"),
                                        (2, "shoematch.crisp.model")])
