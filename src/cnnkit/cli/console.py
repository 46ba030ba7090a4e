"""The consoles the command line prints to: results on stdout, messages on stderr."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)
