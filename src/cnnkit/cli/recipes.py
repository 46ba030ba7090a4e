"""``cnnkit recipes``: list the named training recipes."""

from __future__ import annotations

from cnnkit.cli.console import out


def recipes_command() -> None:
    """List the recipes `cnnkit train --recipe NAME` takes, with what each is known to reach."""
    from rich.table import Table

    from cnnkit.train.recipes import RECIPES

    table = Table("recipe", "setup", "known to reach")
    table.columns[0].no_wrap = True
    for recipe in RECIPES.values():
        settings = recipe.settings
        setup = (
            f"{settings.get('model', 'lenet')} on {settings.get('data', 'mnist')}, "
            f"{settings.get('epochs', 10)} epochs. {recipe.description}"
        )
        table.add_row(recipe.name, setup, recipe.expect)
    table.add_row(
        "auto",
        "chosen from the data (the default for folder:PATH without --model): fastnet, "
        "epochs, augmentation, early stopping, class weights; printed before training",
        "benchmarks/RESULTS.md, section folders",
    )
    out.print(table)
