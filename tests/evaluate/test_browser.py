"""The report opens in headless Chromium (Debian's package) and shows its sections."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.browser import chromium, needs_chromium
from tests.evaluate.test_report import SECTIONS

pytestmark = needs_chromium


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
