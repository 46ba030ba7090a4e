"""Usage mistakes and help, through the real command line.

Every usage mistake (unknown command or option, missing argument, a value of the wrong type)
is one line on stderr and exit code 2; cnnkit's own errors exit 1; a bare ``cnnkit`` prints
the help and exits 0. Some cases run the installed ``cnnkit`` script in a subprocess, the
rest call the same ``main()`` in-process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkit.cli.main import main

SCRIPT = Path(sys.executable).with_name("cnnkit")  # the entry point pip installed


def installed(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """Run the installed ``cnnkit`` script as a user's shell would."""
    env = {"COLUMNS": str(columns), "PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    if "PYTHONPATH" in os.environ:  # e.g. another typer/click checked out on top
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env
    )


def in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main()`` with ``args``: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(args)
        raise SystemExit(0)  # main returns normally on success
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trian"], r"No such command 'trian'\..*Did you mean 'train'"),
        (["train", "--epoch", "1"], r"No such option:? '?--epoch\b.*--epochs"),
        (["train", "--epochs", "ten"], r"Invalid value for '--epochs'"),
        (["evaluate"], r"Missing argument 'RUN'"),
    ],
)
def test_usage_mistakes_through_the_installed_script(args, message) -> None:
    result = installed(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0])
    assert f"see 'cnnkit {args[0] if args[0] != 'trian' else ''}".rstrip() in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["filters", "runs/x", "--output", "x.png"], r"No such option:? '?--output\b"),
        (["data", "chek", "mnist"], r"No such command 'chek'\..*Did you mean 'check'"),
        (["gradcam", "runs/x"], r"Missing argument 'IMAGES'"),
        (["train", "--lr", "fast"], r"Invalid value for '--lr'"),
        (["train", "--epochs", "0"], r"Invalid value for '--epochs'"),  # below its minimum
        (["serve", "runs/x", "--port", "70000"], r"Invalid value for '--port'"),
        (["train", "--nesterov=yes"], r"--nesterov"),  # a flag given a value
        (["--verbos"], r"No such option:? '?--verbos\b"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_code_2(args, message, capsys) -> None:
    code, out, err = in_process(args, capsys)
    assert code == 2
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # fixed choices are checked by cnnkit, which names the nearest one
        (["train", "--optimizer", "adamax"], "unknown optimizer 'adamax'. Did you mean 'adam'?"),
        (["conv", "--op", "maxx"], "--op must be one of"),
        # the option language (key=value,...) of --reduce-lr / --early-stopping
        (["train", "--reduce-lr", "factor=x"], "option factor='x': needs a number"),
        (["train", "--reduce-lr", "factr=0.5"], "no option 'factr'. Did you mean 'factor'?"),
        (["train", "--early-stopping", "patience"], "'patience' must look like key=value"),
        (["evaluate", "/nonexistent/run"], "no such run directory"),
    ],
)
def test_cnnkit_own_errors_are_one_line_and_exit_code_1(args, message, capsys) -> None:
    code, _, err = in_process(args, capsys)
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and message in err, err


def test_bare_cnnkit_prints_the_help_and_exits_0() -> None:
    # as `git` does: no arguments is a question ("what can this do?"), not a mistake
    result = installed()
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: cnnkit [OPTIONS] COMMAND [ARGS]...")
    assert re.search(r"^\s+train\s+Train a model", result.stdout, re.M)


def test_a_bare_group_prints_its_help(capsys) -> None:
    code, out, err = in_process(["data"], capsys)
    assert code == 0 and err == ""
    assert "Usage: cnnkit data [OPTIONS] COMMAND [ARGS]..." in out and "check" in out


def _commands() -> list[list[str]]:
    import typer

    from cnnkit.cli.main import app

    group = typer.main.get_command(app)
    names = [[name] for name in group.commands if name != "data"]
    return names + [["data", name] for name in group.commands["data"].commands]


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_at_80_columns_is_whole(command, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, text, err = in_process([*command, "--help"], capsys)
    assert code == 0 and err == ""
    assert text.startswith(f"Usage: cnnkit {' '.join(command)} ")
    assert all(len(line) <= 80 for line in text.splitlines())
    # nothing cut, no markup eaten, no typer-internal type names, no documents users lack
    for bad in ("…", "<str>", "<int", "<path>", "<bool>", "list[", "{run}", "SPEC", "\\[", "None"):
        assert bad not in text, (bad, text)
    assert not re.search(r"\w \.(\s|$)", text), text  # "Learning rate ." (markup eaten)
    usage = text.splitlines()[0]
    assert re.fullmatch(r"Usage: cnnkit [a-z ]+ \[OPTIONS\]( \[?[A-Z][A-Z_]*(\.\.\.)?\]?)*", usage)


def test_train_help_shows_every_default(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    _, text, _ = in_process(["train", "--help"], capsys)
    flat = " ".join(text.split())
    for option, default in (
        ("--data SOURCE", "[default: mnist]"),
        ("--model NAME|FILE", "[default: lenet]"),
        ("--epochs N", "[default: 10]"),
        ("--batch-size N", "[default: 100]"),
        ("--optimizer NAME", "[default: adam]"),
        ("--lr FLOAT", "[default: 0.001]"),
        ("--schedule NAME[:OPTIONS]", "[default: constant]"),
        ("--loss NAME", "[default: cross_entropy]"),
        ("--precision NAME", "[default: auto"),
        ("--seed N", "[default: 0]"),
        ("--device DEVICE", "[default: auto]"),
        ("--runs-dir PATH", "[default: runs]"),
    ):
        after = flat[flat.index(option) :]
        assert default in after[:200], (option, after[:200])
    # the option language is spelled out with every option's default, never cut
    assert "factor (default 0.1), patience (10 epochs)" in flat and "min_delta (1e-4)" in flat


def test_recipes_cite_no_document_users_lack(capsys) -> None:
    _, text, _ = in_process(["recipes"], capsys)
    assert "textbook-lenet" in text and "SPEC" not in text and "§" not in text
