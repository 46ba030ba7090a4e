"""The report opens in headless Chromium (Debian's package) and shows its sections."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.evaluate.test_report import SECTIONS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: `./run tests` installs Debian's chromium when run as root "
    "with apt available; else `apt-get install chromium`",
)

# Without the networking flags Chromium's background connections fail on a closed network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_report_renders_with_every_section(report, tmp_path) -> None:
    url = report.resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url).stdout
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in dom, anchor
    for title in ("Run card", "Training curves", "Confusion matrix", "Top losses", "Grad-CAM"):
        assert f"<h2>{title}</h2>" in dom, title

    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1280,9000", f"--screenshot={shot}", url)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int32)
    assert pixels.shape[1] == 1280
    header = pixels[:100].reshape(-1, 3)
    assert (np.abs(header - (0x1F, 0x3B, 0x63)).sum(axis=1) < 12).mean() > 0.5  # the banner
    assert pixels[::4, ::4].std() > 30  # not a blank page
    colours = np.unique((pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]).size
    assert colours > 2000  # the embedded pictures were decoded and drawn
    red = (pixels[..., 0] > 170) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 500  # confusion-matrix errors and Grad-CAM heat are visible
