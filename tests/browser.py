"""Headless Chromium from Debian's package, shared by the browser tests (never downloaded)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: `./run tests` installs Debian's chromium when run as root "
    "with apt available; else `apt-get install chromium`",
)

# Without the networking flags Chromium's background connections fail on a closed network.
NETWORK_FLAGS = (
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", *NETWORK_FLAGS, "--hide-scrollbars")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once (``--dump-dom URL``, ``--screenshot=FILE URL``, ...)."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def launch_playwright(playwright: object) -> object:
    """Debian's Chromium driven by Playwright (``sync_playwright()``'s object), headless."""
    return playwright.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", *NETWORK_FLAGS],
    )
