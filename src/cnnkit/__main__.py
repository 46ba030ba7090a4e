"""``python -m cnnkit`` is the same as the ``cnnkit`` command."""

from cnnkit.cli.main import main

main()
