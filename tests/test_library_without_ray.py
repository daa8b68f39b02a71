"""The library outside `shoematch/ray/` imports with Ray unimportable: Ray stays in its adapter."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

IMPORT_ALL_WITHOUT_RAY = """
import importlib, pkgutil, sys
import shoematch

class BlockRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, BlockRay())
names = [m.name for m in pkgutil.walk_packages(shoematch.__path__, "shoematch.")
         if not (m.name == "shoematch.ray" or m.name.startswith("shoematch.ray."))]
for name in names:
    importlib.import_module(name)
assert not any(m == "ray" or m.startswith("ray.") for m in sys.modules), "ray got imported"
print(len(names))
"""


def test_library_imports_without_ray():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL_WITHOUT_RAY], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 60  # every module of the library was imported


def test_the_ray_adapter_needs_ray():
    """The check above is meaningful: the adapter folder does import Ray."""
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL_WITHOUT_RAY.replace(
        'if not (m.name == "shoematch.ray" or m.name.startswith("shoematch.ray."))', "")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "blocked in this test" in result.stderr
