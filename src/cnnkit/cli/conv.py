"""``cnnkit conv``: a small convolution or pooling worked step by step, as textbooks draw it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import typer

from cnnkit.cli.console import out

if TYPE_CHECKING:
    from rich.table import Table

OPS = ("correlate", "convolve", "max", "avg")


def parse_matrix(text: str, what: str) -> list[list[float]]:
    """``"1 2 3; 4 5 6"`` (rows by ``;``, values by spaces or commas) -> rows of numbers."""
    from cnnkit.errors import ConfigError

    rows = [row.replace(",", " ").split() for row in text.split(";") if row.strip()]
    try:
        values = [[float(v) for v in row] for row in rows]
    except ValueError:
        values = []
    if not values or len({len(row) for row in values}) != 1:
        raise ConfigError(
            f"--{what} must be rows of numbers separated by ';', all the same length, "
            f"e.g. '1 2 3; 4 5 6', got {text!r}"
        )
    return values


def conv_command(
    op: str = typer.Option(
        "correlate",
        "--op",
        help="correlate (what CNN layers compute), convolve (kernel flipped), max or avg pooling.",
    ),
    input_text: str | None = typer.Option(
        None, "--input", help="The input, rows separated by ';', e.g. '1 2 3; 4 5 6; 7 8 9'."
    ),
    kernel_text: str | None = typer.Option(
        None, "--kernel", help="The kernel for correlate/convolve, e.g. '1 0; 0 -1'."
    ),
    size: int = typer.Option(5, "--size", min=1, max=12, help="Random square input of this size."),
    window: int = typer.Option(
        3, "--window", "-k", min=1, max=8, help="Kernel or pooling window size (random kernel)."
    ),
    stride: int = typer.Option(1, "--stride", "-s", min=1, help="Step between windows."),
    padding: str = typer.Option("valid", "--padding", "-p", help="valid, same or a count."),
    seed: int = typer.Option(0, "--seed", help="Seeds the random input and kernel."),
    max_steps: int = typer.Option(
        9, "--max-steps", min=0, help="Show at most this many windows (0: only the result)."
    ),
) -> None:
    """Slide a kernel (or pooling window) over a small input and show every step: the
    window, each product, and the output cell it makes."""
    import numpy as np
    from rich.columns import Columns

    from cnnkit import ops
    from cnnkit.errors import ConfigError

    if op not in OPS:
        raise ConfigError(f"--op must be one of {', '.join(OPS)}, got {op!r}")
    pad: Literal["valid", "same"] | int = (
        "same" if padding == "same" else "valid" if padding == "valid" else _count(padding)
    )
    rng = np.random.default_rng(seed)
    x = (
        np.array(parse_matrix(input_text, "input"))
        if input_text
        else rng.integers(0, 10, (size, size)).astype(float)
    )
    if x.shape[0] == 1:
        x = x[0]  # one row: a 1-D signal
    pooling = op in ("max", "avg")
    if pooling:
        kernel = None
        steps = ops.pool_steps(
            x, window, strides=stride, padding=pad, op="max" if op == "max" else "avg"
        )
        result = (ops.max_pool if op == "max" else ops.avg_pool)(x, window, stride, pad)
        shape = (window,) * x.ndim
    else:
        kernel = (
            np.array(parse_matrix(kernel_text, "kernel"))
            if kernel_text
            else rng.integers(-1, 2, (window,) * x.ndim).astype(float)
        )
        if kernel.ndim != x.ndim:
            kernel = kernel.reshape(-1) if x.ndim == 1 else kernel
        steps = ops.conv_steps(x, kernel, stride=stride, padding=pad, flip=op == "convolve")
        weight = np.flip(kernel) if op == "convolve" else kernel
        result = ops.conv(x[None, None], weight[None, None], stride=stride, padding=pad)[0, 0]
        shape = kernel.shape

    window_text = "x".join(map(str, shape))
    out.print(f"[bold]{_title(op)}[/], window {window_text}, stride {stride}, padding {padding}")
    panels = [_grid(x, "input")]
    if kernel is not None:
        panels.append(_grid(kernel, "kernel"))
        if op == "convolve":
            panels.append(_grid(np.flip(kernel), "kernel flipped (true convolution)"))
    out.print(Columns(panels))
    for n, step in enumerate(steps[:max_steps], start=1):
        where = ",".join(map(str, step.index))
        cells = [_grid(step.window, "window")]
        if step.terms is not None:
            cells.append(_grid(step.terms, "window * kernel"))
            text = f"sum of the products = {_num(step.value)}"
        else:
            text = f"{op} of the window = {_num(step.value)}"
        at = f"{'padded ' if padding != 'valid' else ''}input {step.origin}"
        out.print(f"step {n}: window at {at} -> output[{where}]: {text}")
        out.print(Columns(cells))
    if len(steps) > max_steps:
        out.print(f"... {len(steps) - max_steps} more windows (--max-steps {len(steps)} shows all)")
    for n, k in sorted(set(zip(x.shape, shape, strict=True))):
        out.print(f"output size: {_size_formula(n, k, stride, pad)}", highlight=False)
    out.print(Columns([_grid(result, "result")]))


def _size_formula(n: int, k: int, stride: int, padding: str | int) -> str:
    from cnnkit import ops

    size = ops.output_size(n, k, stride, padding)
    if padding == "same":
        return f"ceil({n}/{stride}) = {size} (TensorFlow SAME)"
    if padding == "valid":
        return f"floor(({n} - {k})/{stride}) + 1 = {size} (no padding)"
    return f"floor(({n} + 2·{padding} - {k})/{stride}) + 1 = {size}"


def _count(text: str) -> int:
    from cnnkit.errors import ConfigError

    if not text.isdigit():
        raise ConfigError(f"--padding must be valid, same or a count >= 0, got {text!r}")
    return int(text)


def _title(op: str) -> str:
    return {
        "correlate": "Cross-correlation (what a Conv2D layer computes)",
        "convolve": "True convolution (kernel flipped)",
        "max": "Max pooling",
        "avg": "Average pooling",
    }[op]


def _num(value: float) -> str:
    return f"{value + 0.0:g}"  # + 0.0 turns -0 into 0


def _grid(values: Any, title: str) -> Table:
    import numpy as np
    from rich.table import Table

    array = np.atleast_2d(np.asarray(values))
    table = Table(title=title, show_header=False, show_lines=True, padding=(0, 1))
    for _ in range(array.shape[1]):
        table.add_column(justify="right")
    for row in array:
        table.add_row(*(_num(float(v)) for v in row))
    return table
