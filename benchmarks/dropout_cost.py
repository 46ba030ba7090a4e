"""Benchmark: what cnnkit's Dropout mask saves per training step, against torch's own.

cnnkit's :class:`~cnnkit.layers.Dropout` draws its CPU mask as a uniform compared with the
rate (``cnnkit.layers.core._MaskDropout``); torch's ``nn.Dropout`` calls ``bernoulli_``. For
each textbook model with Dropout, two copies with the same weights train side by side in one
process — one with cnnkit's Dropout, one with ``nn.Dropout`` swapped in — in interleaved
rounds of ``--steps`` steps (forward, backward, fused Adam, in the precision ``fit`` picks for
the device), so both see the same machine. Reported: the median milliseconds per step over
the rounds, and cnnkit's as a share of torch's.

    ./run python benchmarks/dropout_cost.py            # 15 rounds of 10 steps per model
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from common import describe_machine, markdown_table, median, write_section
from torch import nn

from cnnkit.layers import Dropout
from cnnkit.models.registry import build_model
from cnnkit.openmp import flush_denormals
from cnnkit.train.optim import make_optimizer
from cnnkit.train.precision import resolve_precision

MODELS = {"lenet_dropout": 128, "bn_cnn": 128, "vgg4": 64}  # model: batch


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose Dropout layers run torch's ``nn.Dropout``."""
    other = copy.deepcopy(model)
    for layer in other.modules():
        if isinstance(layer, Dropout):
            layer.dropout = nn.Dropout(layer.rate)
    return other


def stepper(model: nn.Module, batch: int, device: torch.device) -> tuple[Callable[[], None], str]:
    precision = resolve_precision("auto", device, model)
    model.to(device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer("adam", model.parameters(), lr=1e-3)
    images = torch.randn(batch, 3, 32, 32, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=precision.dtype))
        if precision.dtype is not None
        else nullcontext
    )

    def step() -> None:
        with autocast():
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, precision.name


def timed(step: Callable[[], None], steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10, help="steps per round and variant")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md")
    args = parser.parse_args()
    flush_denormals()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        ours = build_model(name)
        theirs = with_torch_dropout(ours)
        variants = {"cnnkit": stepper(ours, MODELS[name], device)}
        variants["torch"] = stepper(theirs, MODELS[name], device)
        times: dict[str, list[float]] = {key: [] for key in variants}
        for step, _ in variants.values():
            timed(step, 3)  # warm-up: oneDNN primitives, the allocator
        for _ in range(args.rounds):
            for key, (step, _) in variants.items():
                times[key].append(timed(step, args.steps))
        ms = {key: median(values) for key, values in times.items()}
        print(f"{name}: cnnkit {ms['cnnkit']:.1f} ms/step, torch {ms['torch']:.1f} ms/step")
        rows.append(
            [
                name,
                MODELS[name],
                variants["cnnkit"][1],
                f"{ms['torch']:.1f}",
                f"{ms['cnnkit']:.1f}",
                f"{ms['cnnkit'] / ms['torch']:.2f}x",
            ]
        )
    table = markdown_table(
        ["model", "batch", "precision", "torch's Dropout ms/step", "cnnkit's ms/step", "ratio"],
        rows,
    )
    body = (
        f"Machine: {describe_machine()}.\n\n"
        f"A training step (forward, backward, fused Adam) of each textbook model with Dropout, "
        f"on random 3x32x32 batches: cnnkit's Dropout against the same model with torch's "
        f"`nn.Dropout` swapped in, same weights, in one process, interleaved; median over "
        f"{args.rounds} rounds of {args.steps} steps. `./run python benchmarks/dropout_cost.py`"
        f"\n\n{table}\n"
    )
    print(table)
    if not args.no_write:
        write_section("dropout_cost", "Dropout's mask: cost per training step", body)


if __name__ == "__main__":
    main()
