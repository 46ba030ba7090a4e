"""Training checkpoints: written atomically, read back with torch's safe loader.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — nothing that
needs pickled code — so it loads with ``torch.load(weights_only=True)``, which refuses to
run code hidden in a file. ``last.pt`` (written by
:class:`~cnnkit.train.callbacks.ModelCheckpoint`) is a full snapshot of training: model,
optimizer, loss scaler, callbacks, random generators and the position in the epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cnnkit.atomic import write_path_atomically
from cnnkit.errors import RunError

CHECKPOINTS = "checkpoints"  # folder inside a run directory
LAST = "last.pt"
BEST = "best.pt"
FORMAT = 1  # bumped when the snapshot layout changes


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a crash mid-write leaves the old file intact."""
    write_path_atomically(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU.

    Raises:
        RunError: the file is missing, truncated, not a checkpoint, or holds code.
    """
    file = Path(path)
    if not file.is_file():
        raise RunError(
            f"{file}: no checkpoint there; a run writes checkpoints/{LAST} after its first "
            "epoch (or when interrupted with Ctrl-C)"
        )
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise RunError(f"{file}: cannot be read as a cnnkit checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or "model" not in payload:
        raise RunError(f"{file}: not a cnnkit checkpoint (no model weights inside)")
    return payload
