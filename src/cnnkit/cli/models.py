"""``cnnkit models``: list the registered architectures."""

from __future__ import annotations

from cnnkit.cli.console import out


def models_command() -> None:
    """List the registered models with their default input shapes."""
    from rich.table import Table

    from cnnkit.models.registry import list_models

    table = Table("name", "input", "description")
    for entry in list_models():
        table.add_row(entry.name, "x".join(map(str, entry.default_input_shape)), entry.description)
    out.print(table)
