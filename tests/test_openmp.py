"""The cnnkit command asks OpenMP for sleeping threads, unless the user chose a policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnkit.openmp import subcommand

PROBE = """
import json, os, sys
from cnnkit.cli.main import main
try:
    main(["models"])
except SystemExit:
    pass
from cnnkit.openmp import wait_policy
print(json.dumps([os.environ.get("OMP_WAIT_POLICY"), wait_policy(), "torch" in sys.modules]))
"""


def probe(env: dict[str, str], code: str = PROBE) -> list:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_command_sets_passive_waiting_before_torch_starts() -> None:
    policy, recorded, torch_loaded = probe({})
    assert policy == "PASSIVE" and recorded == "OMP_WAIT_POLICY=PASSIVE" and torch_loaded


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_the_training_commands_keep_spinning_threads(command) -> None:
    # fit adapts their number to the load instead (tests/train/test_threads.py)
    code = f"import sys\nsys.argv = ['cnnkit', '-v', '{command}', '--epochs', '1']\n"
    code += "import cnnkit.cli\n" + PROBE
    policy, recorded, _ = probe({}, code)
    assert policy is None and recorded == "spin (libgomp default)"


@pytest.mark.parametrize(
    "argv, command",
    [
        (["cnnkit"], None),
        (["cnnkit", "train"], "train"),
        (["cnnkit", "--verbose", "-v", "predict", "runs/x", "a.png"], "predict"),
        (["cnnkit", "--version"], None),
    ],
)
def test_subcommand(argv, command) -> None:
    assert subcommand(argv) == command


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "OMP_WAIT_POLICY=ACTIVE"),
        ({"GOMP_SPINCOUNT": "1000"}, "GOMP_SPINCOUNT=1000"),
    ],
)
def test_a_users_choice_is_kept_and_recorded(env, expected) -> None:
    assert probe(env)[1] == expected


def test_too_late_once_torch_is_imported() -> None:
    code = "import torch\n" + PROBE
    policy, recorded, _ = probe({}, code)
    assert policy is None and recorded == "spin (libgomp default)"


def test_importing_the_library_changes_nothing() -> None:
    code = "import json, os, cnnkit.openmp\nprint(json.dumps([os.environ.get('OMP_WAIT_POLICY')]))"
    assert probe({}, code) == [None]


FLUSHING = """
import json
{start}
import torch
from cnnkit.openmp import flushes_denormals
torch.randn(1 << 22).sum()  # torch's threads are running from here
print(json.dumps([flushes_denormals()]))
"""


def test_the_commands_threads_flush_denormals_to_zero() -> None:
    # every thread, not just the main one: the parallel probe fails if one keeps denormals
    command = "import sys\nfrom cnnkit.cli.main import main\nsys.argv = ['cnnkit', 'models']\n"
    command += "try:\n    main()\nexcept SystemExit:\n    pass"
    assert probe({}, FLUSHING.format(start=command)) == [True]


def test_the_library_leaves_denormals_alone() -> None:
    # nor does calling the command's main() from Python with a list of arguments
    calling = "from cnnkit.cli.main import main\ntry:\n    main(['models'])\n"
    calling += "except SystemExit:\n    pass"
    assert probe({}, FLUSHING.format(start=calling)) == [False]


def test_flushing_set_after_the_threads_started_is_not_reported_as_flushing() -> None:
    late = "import torch\ntorch.randn(1 << 22).sum()\ntorch.set_flush_denormal(True)"
    assert probe({}, FLUSHING.format(start=late)) == [False]


def test_denormals_flushed_inside_the_context_only() -> None:
    import torch

    from cnnkit.openmp import denormals_flushed

    if not torch.set_flush_denormal(False):  # as a fresh process starts (tests may call main)
        pytest.skip("this CPU cannot flush denormals")
    tiny = torch.tensor([1e-39])  # a float32 denormal (made after: flushing would store 0)
    assert (tiny * 1.0).item() > 0
    with denormals_flushed():
        assert (tiny * 1.0).item() == 0.0
        with denormals_flushed():
            pass
        assert (tiny * 1.0).item() == 0.0  # an inner context keeps the outer's setting
    assert (tiny * 1.0).item() > 0
