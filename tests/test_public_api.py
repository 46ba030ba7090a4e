"""The public API: what ``cnnkit`` exports, that type checkers see it with real types, and that
the README's Python examples need nothing else."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import cnnkit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INIT = ROOT / "src" / "cnnkit" / "__init__.py"

# cnnkit.keras mirrors Keras's module tree on purpose (``from keras.layers import Dense`` becomes
# ``from cnnkit.keras.layers import Dense``), so paths below it are its public names.
MIRRORED = "cnnkit.keras"


def _type_checking_imports() -> dict[str, str]:
    """``name -> module`` of the imports under ``if TYPE_CHECKING:`` in ``cnnkit/__init__.py``."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n))
    names = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names:
            assert alias.asname == alias.name, f"re-export {alias.name} as itself"
            names[alias.name] = (
                f"{node.module}.{alias.name}" if node.module == "cnnkit" else node.module
            )
    return names


def test_typed_imports_and_lazy_table_name_the_same_things() -> None:
    assert _type_checking_imports() == cnnkit._PUBLIC
    assert set(cnnkit.__all__) == {"__version__", *cnnkit._PUBLIC}


def test_every_public_name_resolves() -> None:
    for name in cnnkit.__all__:
        value = getattr(cnnkit, name)
        module = cnnkit._PUBLIC.get(name)
        if module == f"cnnkit.{name}":
            assert value is importlib.import_module(module)
        elif module is not None:
            assert getattr(value, "__module__", module).startswith(module), name


def _readme_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def _public_path(path: str) -> bool:
    """``cnnkit``, ``cnnkit.<exported subpackage>``, or anything under the Keras mirror."""
    parts = path.split(".")
    if path == MIRRORED or path.startswith(MIRRORED + "."):
        return True
    return parts[0] == "cnnkit" and (
        len(parts) == 1 or (len(parts) == 2 and cnnkit._PUBLIC.get(parts[1]) == path)
    )


def test_readme_examples_use_only_top_level_names() -> None:
    blocks = _readme_blocks()
    assert len(blocks) >= 4
    problems = []
    for number, block in enumerate(blocks, 1):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnkit"):
                module = node.module or ""
                if not _public_path(module):
                    problems.append(f"block {number}: from {module} import ...")
                    continue
                exported = importlib.import_module(module)
                for alias in node.names:
                    public = getattr(exported, "__all__", None)
                    if alias.name != "*" and (public is not None and alias.name not in public):
                        problems.append(f"block {number}: {module}.{alias.name} is not exported")
                    elif alias.name != "*":
                        getattr(exported, alias.name)  # resolves
            elif isinstance(node, ast.Import):
                problems += [
                    f"block {number}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("cnnkit") and not _public_path(a.name)
                ]
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "cnnkit"
                and node.attr not in cnnkit.__all__
            ):
                problems.append(f"block {number}: cnnkit.{node.attr} is not exported")
    assert not problems, "\n".join(problems)


def test_type_checkers_see_real_types(tmp_path: Path) -> None:
    """mypy on a snippet that uses the public names: none of them is ``Any``."""
    names = [n for n in cnnkit.__all__ if n != "__version__"]
    snippet = tmp_path / "uses_cnnkit.py"
    snippet.write_text(
        "import cnnkit\n" + "".join(f"reveal_type(cnnkit.{n})\n" for n in names), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
    )
    revealed = re.findall(r"Revealed type is \"(.*)\"", result.stdout)
    assert len(revealed) == len(names), result.stdout + result.stderr
    untyped = [n for n, t in zip(names, revealed, strict=True) if t == "Any"]
    assert not untyped, f"mypy sees these as Any: {untyped}"
