"""Shared by the benchmark scripts: the machine's description, tables, RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = """# Benchmark results

Written by the scripts in this folder (`./run python benchmarks/<script>.py`); each script
replaces its own section. Ratios compare against a reference measured in the same run on the
same machine, so they survive a noisy machine better than the absolute seconds do.
"""


def load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def describe_machine() -> str:
    """One paragraph: CPU, cores, threads, bf16 support, GPU, versions, load."""
    from cnnkit import __version__
    from cnnkit.card import Environment
    from cnnkit.train.precision import cpu_has_native_bf16

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    cpu = Environment.describe(torch.device("cpu")).processor
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch threads "
        f"{torch.get_num_threads()}, native bf16 on CPU: {cpu_has_native_bf16()}, "
        f"GPU: {gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"cnnkit {__version__}; load average (1/5/15 min) at the start: {load_average()}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or add) the section ``name`` of RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d %H:%M")
    section = f"<!-- {name}:start -->\n## {title}\n\n_Measured {stamp}._\n\n{body.strip()}\n"
    section += f"<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text, encoding="utf-8")
