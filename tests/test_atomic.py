from __future__ import annotations

import os
import stat

import pytest

from cnnkit.atomic import atomic_folder, atomic_open, write_json, write_path_atomically


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


def test_a_folder_appears_whole_or_not_at_all(tmp_path) -> None:
    target = tmp_path / "export"
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("crash in the middle of an export")
    assert list(tmp_path.iterdir()) == []
    old = os.umask(0o022)
    try:
        with atomic_folder(target) as staging:
            (staging / "a.txt").write_text("first")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # not mkdtemp's private 0o700
    with pytest.raises(FileExistsError, match="not empty"), atomic_folder(target):
        pass
    with atomic_folder(target, replace=True) as staging:
        (staging / "b.txt").write_text("second")
    assert [p.name for p in target.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # nothing staged or old left
    with pytest.raises(FileExistsError, match="not a folder"), atomic_folder(target / "b.txt"):
        pass


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import textwrap

    import torch

    from cnnkit.train.checkpoint import load_checkpoint, save_checkpoint

    target = tmp_path / "best.pt"
    save_checkpoint(target, {"model": {"w": torch.ones(2)}})
    # a writer killed (SIGKILL) in the middle of saving: its temporary stays behind
    script = textwrap.dedent(
        f"""
        import sys, time
        from cnnkit.atomic import write_path_atomically
        def writer(tmp):
            open(tmp, "wb").write(b"half a checkpoint")
            print("writing", flush=True)
            time.sleep(60)
        write_path_atomically({str(target)!r}, writer)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        live = list(tmp_path.glob(".best.pt.*.tmp"))
        save_checkpoint(tmp_path / "other.pt", {"model": {}})  # another target: not touched
        write_json(tmp_path / "x.json", {})
        assert list(tmp_path.glob(".best.pt.*.tmp")) == live  # its writer is still running
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert len(live) == 1 and live[0].exists()
    assert load_checkpoint(target)["model"]["w"].tolist() == [1.0, 1.0]  # the old file is intact
    save_checkpoint(target, {"model": {"w": torch.zeros(2)}})
    assert list(tmp_path.glob("*.tmp")) + list(tmp_path.glob(".*.tmp")) == []
    assert load_checkpoint(target)["model"]["w"].tolist() == [0.0, 0.0]
