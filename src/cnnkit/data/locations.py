"""Where data sources are looked for on this machine.

In order:

1. an explicit ``data_dir`` (``--data-dir``), when given — and nowhere else (the folder
   itself, then ``<data_dir>/<name>``);
2. the user cache: ``$CNNKIT_DATA/<name>`` or ``~/.cache/cnnkit/<name>``;
3. folders the source knows (the copy of MNIST shipped inside cnnkit, Debian's
   Fashion-MNIST package, ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def data_home() -> Path:
    """The user data cache: ``$CNNKIT_DATA`` or ``~/.cache/cnnkit``."""
    env = os.environ.get("CNNKIT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnnkit"


def search_dirs(name: str, known_dirs: Sequence[Path], data_dir: Path | None) -> list[Path]:
    """Folders searched for the files of the source ``name``, in order (module docstring)."""
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / name]
    return [data_home() / name, *known_dirs]
