"""Helpers for feeding damaged files to the real entry points."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``cnnkit ARGS`` through the console entry point: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["cnnkit", *args])
    monkeypatch.setenv("COLUMNS", "300")
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its hash: what must not change."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def edit_card(run: Path, **changes) -> None:
    """Set dotted fields of ``run/run.json`` (``model.num_classes="ten"``) as a user might."""
    card = json.loads((run / "run.json").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = card
        for key in parents:
            target = target[key]
        target[last] = value
    (run / "run.json").write_text(json.dumps(card))


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the session's trained run, free to damage."""
    return Path(shutil.copytree(trained.path, tmp_path / "run"))


@pytest.fixture(scope="session")
def digit_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("digit") / "seven.png"
    pixels = np.zeros((28, 28), np.uint8)
    pixels[5:22, 8:20] = 255
    Image.fromarray(pixels).save(path)
    return path
