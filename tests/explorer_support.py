"""Shared by the explorer's tests: one small site, built once per test session, and a headless Chromium.

The site: three models (one of session 211022, whose images are not in the
release), 60 random release images plus the held-out halves, 20 synthesis
steps, a 4 x 4 dot grid, an in-page budget of 5 steps, and the tutorials'
pages as ``python -m tutorials.build`` writes them (not executed: the
pages' links are the same, and executing takes minutes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

MODELS = ("190923/0", "201025/2", "211022/0")
PAGES = ("190923_neuron0", "201025_neuron2", "211022_neuron0")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_BUILT: dict = {}


def build_arguments(site: Path, cache: Path, data_root, models=MODELS, tutorials_dir: Path | None = None) -> list[str]:
    """script9's arguments for the small test site (no tutorials unless ``tutorials_dir`` is given)."""
    return ["--neurons", ",".join(models), "--pool-size", "60", "--steps", "20", "--dot-grid", "4",
            "--page-steps", "5", "--out", str(site), "--cache-dir", str(cache), "--script6-dir", str(cache / "none"),
            "--results-dir", str(cache / "no_results"), "--data-root", str(data_root),
            "--tutorials-dir", str(tutorials_dir or cache / "no_tutorials")]


def rendered_tutorials(folder: Path) -> Path:
    """Every tutorial's page, notebook, the index and the stylesheet, by tutorials.build's own functions (not executed)."""
    from tutorials.build import (
        read_tutorial,
        tutorial_sources,
        write_index,
        write_page,
        write_stylesheet,
    )

    for source in tutorial_sources():
        write_page(read_tutorial(source), source, folder)
    write_stylesheet(folder)
    write_index(folder)
    return folder


def small_site(tmp_path_factory, data_root) -> tuple[Path, Path, dict]:
    """``(site, cache, build record)`` of the test site, built on first use."""
    if "site" not in _BUILT:
        import script9_explorer as script9

        root = tmp_path_factory.mktemp("explorer")
        site, cache = root / "site", root / "cache"
        tutorials = rendered_tutorials(root / "tutorial_pages")
        _BUILT["record"] = script9.main(build_arguments(site, cache, data_root, tutorials_dir=tutorials))
        _BUILT["site"], _BUILT["cache"] = site, cache
    return _BUILT["site"], _BUILT["cache"], _BUILT["record"]


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} is missing (apt-get install -y chromium chromium-driver)"
    return None


def chromium_driver(width: int = 1200, height: int = 2000):
    """A headless Debian Chromium driven by Selenium; fails under CI=true when missing, else skips.

    No browser or driver is downloaded: both paths are given explicitly.
    """
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser for the explorer's browser tests: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Both paths are given, so Selenium Manager has nothing to fetch; offline all the same.
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.profile_folder = profile
    return driver


def close_driver(driver) -> None:
    """Quits the browser and deletes its fresh profile."""
    driver.quit()
    shutil.rmtree(driver.profile_folder, ignore_errors=True)
