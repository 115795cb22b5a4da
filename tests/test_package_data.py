"""Every C source and header the compiled kernels need ships with the package (pyproject package-data)."""

from __future__ import annotations

import fnmatch

import pytest
import tomllib

from classes.runtime.paths import REPOSITORY_ROOT

PACKAGES = ("classes.prediction", "classes.training", "classes.runtime")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_c_source_and_header_is_package_data(package):
    listed = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = listed.get(package, [])
    folder = REPOSITORY_ROOT.joinpath(*package.split("."))
    sources = sorted(path.name for path in folder.iterdir() if path.suffix in (".c", ".h"))
    assert sources, f"no C files in {folder}"
    missing = [name for name in sources if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    assert not missing, f"{missing} are not in pyproject.toml's package-data for {package}: a wheel would lack them"
