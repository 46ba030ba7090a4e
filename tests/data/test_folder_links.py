"""Links in a folder source: a link to a folder out of its class is not followed, and said."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from cnnkit.cli.main import app
from cnnkit.data.folder import list_files
from cnnkit.data.sources import load_dataset
from tests.data import imagefiles as f


def _folder(tmp_path):
    root = tmp_path / "pets"
    for label, seeds in (("cat", (1, 2, 3)), ("dog", (4, 5, 6, 7))):
        (root / label).mkdir(parents=True)
        for seed in seeds:
            (root / label / f"{seed}.png").write_bytes(f.png(f.rgb_array(seed)))
    return root


def test_a_link_out_of_a_class_folder_is_not_followed_and_is_reported(tmp_path) -> None:
    root = _folder(tmp_path)
    os.symlink("..", root / "cat" / "loop")  # cat/loop -> the root: every class again
    os.symlink(root / "dog", root / "cat" / "dogs")
    (root / "cat" / "inner").mkdir()
    (root / "cat" / "inner" / "8.png").write_bytes(f.png(f.rgb_array(8)))
    os.symlink("inner", root / "cat" / "same")  # a link inside the class: read once
    splits = load_dataset(f"folder:{root}", val_size=0, test_size=0)
    counts = dict(zip(splits.train.classes, splits.train.class_counts(), strict=True))
    assert counts == {"cat": 4, "dog": 4}  # 3 + inner/8.png; no dog in the cat class
    assert [p.name for p in list_files(root / "cat")] == ["1.png", "2.png", "3.png", "8.png"]
    result = CliRunner().invoke(app, ["data", "check", f"folder:{root}"])
    assert "2 link(s) to folders outside their class folder not followed" in result.output
    assert "cat/dogs/" in result.output and "cat/loop/" in result.output
    assert sorted(p.name for p in (root / "dog").iterdir()) == ["4.png", "5.png", "6.png", "7.png"]
