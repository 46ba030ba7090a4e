from __future__ import annotations

import os
import stat

import pytest

from cnnkit.atomic import atomic_open, write_json, write_path_atomically


def test_finished_files_are_not_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_path_atomically(tmp_path / "b.bin", lambda tmp: open(tmp, "wb").close())
    finally:
        os.umask(old)
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "card.json"
    write_json(target, {"good": True})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write('{"half')
        raise RuntimeError("crash in the middle of a save")
    assert target.read_text() == '{\n  "good": true\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]
