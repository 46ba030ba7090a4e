"""``cnnkit models``: list the registered architectures."""

from __future__ import annotations

from cnnkit.cli.console import out


def models_command() -> None:
    """List the registered models with their default input shapes and options."""
    import inspect

    from rich.table import Table

    from cnnkit.models.registry import list_models

    table = Table("name", "input", "options", "description")
    for entry in list_models():
        options = [
            f"{p.name}={p.default}"
            for p in inspect.signature(entry.builder).parameters.values()
            if p.name not in ("input_shape", "num_classes") and p.default is not p.empty
        ]
        table.add_row(
            entry.name,
            "x".join(map(str, entry.default_input_shape)),
            ", ".join(options),
            entry.description,
        )
    out.print(table)
    out.print(
        "[dim]cnnkit summary NAME shows a model's layers; cnnkit train --model also takes a "
        ".yaml/.json layer spec.[/]"
    )
