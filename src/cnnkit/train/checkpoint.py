"""Training checkpoints: written atomically, read back with torch's safe loader.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — nothing that
needs pickled code — so it loads with ``torch.load(weights_only=True)``, which refuses to
run code hidden in a file. ``last.pt`` (written by
:class:`~cnnkit.train.callbacks.ModelCheckpoint`) is a full snapshot of training: model,
optimizer, loss scaler, callbacks, random generators and the position in the epoch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.atomic import write_path_atomically
from cnnkit.errors import RunError
from cnnkit.run_files import CHECKPOINTS, LAST

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


SNAPSHOT_KEYS = (
    "format", "model", "optimizer", "scaler", "callbacks", "rng", "position", "step",
    "partial", "lr_scale", "history", "summary",
)  # fmt: skip
WHERE = f"{CHECKPOINTS}/{LAST}"  # what a resumed snapshot is named in messages


def check_snapshot(
    snapshot: Any,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    callbacks: dict[str, Any],
    steps_per_epoch: int,
    where: str = WHERE,
) -> None:
    """A ``last.pt`` snapshot holds what resuming needs, of the right types, shapes and
    ranges, for this ``model``, ``optimizer`` (fresh ones) and callbacks (their fresh
    ``state_dict``), before any of it is put back.

    Raises:
        RunError: naming ``where`` and the first field that is wrong.
    """
    from cnnkit.run import check_finite, check_state_shapes

    def fail(field: str, problem: str) -> None:
        raise RunError(
            f"{where}: {field} {problem}; the checkpoint was changed or damaged, or belongs "
            "to another run"
        )

    def integer(value: Any, field: str, low: int, high: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            fail(field, f"must be a whole number, not {type(value).__name__}")
        if value < low or (high is not None and value > high):
            fail(field, f"is {value}, out of range {low}..{'' if high is None else high}")
        return int(value)

    def number(value: Any, field: str) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            fail(field, f"must be a number, not {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            fail(field, f"is {value}, not a finite number >= 0")

    def tensor(value: Any, field: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
        if not isinstance(value, torch.Tensor) or value.dtype != dtype:
            fail(field, f"must be a {dtype} tensor")
        if tuple(value.shape) != shape:
            fail(field, f"has shape {list(value.shape)}, not {list(shape)}")

    if not isinstance(snapshot, dict):
        fail("the snapshot", "is not a dict")
    missing = [key for key in SNAPSHOT_KEYS if key not in snapshot]
    if missing:
        fail(missing[0], "is missing (a checkpoint written by cnnkit train holds it)")
    if type(snapshot["format"]) is not int or snapshot["format"] != FORMAT:
        fail("format", f"is {str(snapshot['format'])[:20]}, not {FORMAT}")
    for key in ("model", "optimizer", "scaler", "callbacks", "rng", "position", "summary"):
        if not isinstance(snapshot[key], dict):
            fail(key, "must be a dict")
    weights = snapshot["model"]
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        fail("model", "must hold tensors only")
    check_state_shapes(
        {k: (tuple(v.shape), v.dtype) for k, v in weights.items()},
        model.state_dict(),
        f"{where}: model",
        "the run's model",
    )
    check_finite(weights, f"{where}: model")
    # optimizer: groups and per-parameter state of the right shapes
    state, groups = snapshot["optimizer"].get("state"), snapshot["optimizer"].get("param_groups")
    fresh_groups = optimizer.state_dict()["param_groups"]
    if not isinstance(state, dict) or not isinstance(groups, list):
        fail("optimizer", "must hold 'state' (a dict) and 'param_groups' (a list)")
    if len(groups) != len(fresh_groups) or not all(isinstance(g, dict) for g in groups):
        fail("optimizer.param_groups", f"must be {len(fresh_groups)} dict(s)")
    for i, (group, fresh) in enumerate(zip(groups, fresh_groups, strict=True)):
        if group.get("params") != fresh["params"]:
            fail(f"optimizer.param_groups[{i}].params", "do not match the model's parameters")
        for key, value in group.items():
            if (
                key != "params"
                and isinstance(fresh.get(key), float | int)
                and not isinstance(value, float | int | bool)
            ):
                fail(f"optimizer.param_groups[{i}].{key}", "must be a number")
            if isinstance(value, float) and not math.isfinite(value):
                fail(f"optimizer.param_groups[{i}].{key}", f"is {value}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in state.items():
        if (
            not isinstance(index, int)
            or not 0 <= index < len(params)
            or not isinstance(entry, dict)
        ):
            fail(f"optimizer.state[{index!r}]", "does not name a parameter of the model")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                tensor(value, f"optimizer.state[{index}].{key}", value.dtype, params[index].shape)
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    fail(f"optimizer.state[{index}].{key}", "holds NaN or infinite values")
    # callbacks: each known one's fields of the kind it keeps
    for key, fresh in callbacks.items():
        saved = snapshot["callbacks"].get(key)
        if saved is None:
            continue
        if not isinstance(saved, dict):
            fail(f"callbacks.{key}", "must be a dict")
        for name, value in fresh.items():
            if name in saved and not _same_kind(value, saved[name]):
                kind = type(saved[name]).__name__
                fail(f"callbacks.{key}.{name}", f"has the wrong type ({kind})")
    rng = snapshot["rng"]
    tensor(rng.get("torch"), "rng.torch", torch.uint8, tuple(torch.get_rng_state().shape))
    position = snapshot["position"]
    integer(position.get("epoch"), "position.epoch", 0, 10**9)
    batch = integer(position.get("batch"), "position.batch", 0, max(steps_per_epoch - 1, 0))
    partial = snapshot["partial"]
    if (batch == 0) != (partial is None):
        fail("partial", "must be present exactly when position.batch is not 0")
    if partial is not None:
        if not isinstance(partial, dict):
            fail("partial", "must be a dict")
        tensor(partial.get("loss_sum"), "partial.loss_sum", torch.float64, ())
        tensor(partial.get("correct"), "partial.correct", torch.int64, ())
        integer(partial.get("seen"), "partial.seen", 0)
        number(partial.get("time"), "partial.time")
        size = tuple(torch.Generator().get_state().shape)
        tensor(partial.get("augment_rng"), "partial.augment_rng", torch.uint8, size)
    integer(snapshot["step"], "step", 0)
    number(snapshot["lr_scale"], "lr_scale")
    history = snapshot["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        fail("history", "must be a list of dicts")
    for index, row in enumerate(history):  # what the run's card and history.json are made of
        integer(row.get("epoch"), f"history[{index}].epoch", 1)
        number(row.get("time"), f"history[{index}].time")


def _same_kind(fresh: Any, saved: Any) -> bool:
    """Whether a saved callback field fits the field of a fresh callback."""
    numbers = (int, float, type(None))
    if isinstance(fresh, bool):
        return isinstance(saved, bool)
    if isinstance(fresh, numbers):
        return isinstance(saved, numbers) and not isinstance(saved, bool)
    return isinstance(saved, type(fresh))
