"""Headless Chromium for browser tests: Debian's `chromium` (scripts/ensure-browser.sh installs
it), driven by Playwright's Python package through `executable_path`, never a browser build of
Playwright's own. Without them a test skips and says what is missing; under CI it fails."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import ROOT

# Flags that work in a container without a display, a sandbox or network access.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Screenshots and other things a person may want to look at after a run (git-ignored).
ARTIFACTS = ROOT / "test-artifacts"


def missing(required_files: Mapping[Path, str] | None = None) -> str | None:
    """Why a browser test cannot run here, or None. `required_files`: other files the test
    needs, each with what to say when it is absent."""
    if shutil.which("chromium") is None:
        return "Debian's chromium is not installed (scripts/ensure-browser.sh installs it)"
    for path, why in (required_files or {}).items():
        if not path.is_file():
            return why
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def chromium(required_files: Mapping[Path, str] | None = None) -> Iterator[Any]:
    """A launched headless Chromium, or a skip (a failure under CI) saying what is missing."""
    why = missing(required_files)
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run in CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def artifact(name: str) -> Path:
    """A path under test-artifacts/ for a screenshot or a page's text."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
