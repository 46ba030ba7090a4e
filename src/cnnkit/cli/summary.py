"""``cnnkit summary``: a model's layers, shapes, parameters and cost, as Keras prints them."""

from __future__ import annotations

import typer

from cnnkit.cli.console import out


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,28,28"`` or ``"1x28x28"`` -> ``(1, 28, 28)``."""
    from cnnkit.errors import ConfigError

    parts = text.replace("x", ",").replace(" ", "").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(n < 1 for n in shape):
        raise ConfigError(
            f"--input-shape must be positive integers C,H,W such as 1,28,28, got {text!r}"
        )
    return shape


def summary_command(
    model: str = typer.Argument(
        ..., help="A registry name (see `cnnkit models`) or a model spec file (.yaml/.json)."
    ),
    input_shape: str | None = typer.Option(
        None,
        "--input-shape",
        "-i",
        help="Per-sample input C,H,W, e.g. 3,32,32 (default: the model's or the spec's).",
    ),
    num_classes: int | None = typer.Option(
        None, "--num-classes", "-c", min=1, help="Classes (default: 10, or the spec's head)."
    ),
    layout: str = typer.Option(
        "nchw", "--layout", help="Show shapes as nchw (torch) or nhwc (Keras)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    model_option: list[str] = typer.Option(
        [], "--model-option", "-o", help="Model option key=value, e.g. dropout=0.5 (repeatable)."
    ),
) -> None:
    """Show each layer's output shape, parameters (and how they were counted), receptive
    field, multiply-adds and activation memory, with Keras's totals."""
    import json

    from cnnkit.layers.summary import summary
    from cnnkit.models.resolve import resolve_model
    from cnnkit.options import parse_pairs

    module, record = resolve_model(
        model,
        input_shape=parse_shape(input_shape) if input_shape else None,
        num_classes=num_classes,
        options=parse_pairs(model_option, what="--model-option"),
    )
    result = summary(module, tuple(record["input_shape"]), layout=layout)
    if as_json:
        out.print(
            json.dumps(result.to_dict(), indent=2), soft_wrap=True, markup=False, highlight=False
        )
        return
    out.print(result.to_table())
    out.print(result.totals_text(), highlight=False)
