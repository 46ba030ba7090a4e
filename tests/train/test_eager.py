"""Optimizers that step without torch's compiler; bf16 only where it pays."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
from torch import nn

from cnnkit.train import precision as precision_module
from cnnkit.train.optim import make_optimizer
from cnnkit.train.precision import resolve_precision

# A fresh interpreter: whether torch._dynamo gets imported can only be seen before anything
# (this test process included) has imported it.
FRESH = """
import sys, torch
from cnnkit.train.optim import make_optimizer

def train(kind):
    torch.manual_seed(0)
    params = [nn_param(8, 5), nn_param(5)]
    settings = {"lr": 0.05, **({"momentum": 0.9} if kind in ("sgd", "rmsprop") else {})}
    optimizer = make_optimizer(kind, params, **settings)
    grads = torch.Generator().manual_seed(1)
    for _ in range(4):
        for p in params:
            # some entries without gradient: their decaying state is what the kernels see
            p.grad = torch.randn(p.shape, generator=grads) * (p > 0)
        optimizer.step()
        optimizer.zero_grad()
    optimizer.load_state_dict(optimizer.state_dict())
    return [p.detach().clone() for p in params]

def nn_param(*shape):
    return torch.nn.Parameter(torch.randn(*shape))

kinds = ["sgd", "adam", "adamw", "rmsprop", "adagrad"]
ours = {kind: train(kind) for kind in kinds}
print("compiler after eager training:", "torch._dynamo" in sys.modules)
import torch._dynamo  # from here on torch's own wrappers are in charge
theirs = {kind: train(kind) for kind in kinds}
for kind in kinds:
    same = all(torch.equal(a, b) for a, b in zip(ours[kind], theirs[kind], strict=True))
    print(kind, "equal:", same)
"""

# The whole engine: a short fit, then evaluate, without torch's compiler.
FIT = """
import sys, torch, cnnkit
images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
train = cnnkit.Dataset(images, torch.arange(64) % 10, tuple("0123456789"), source="noise")
model = cnnkit.build_model("lenet", input_shape=(1, 28, 28), num_classes=10)
pre = cnnkit.Preprocessing.from_dataset(train)
cnnkit.fit(model, train=train, preprocessing=pre, epochs=1, batch_size=32, verbose=0)
print("compiler after fit:", "torch._dynamo" in sys.modules)
"""


def test_eager_optimizers_update_exactly_as_torch_without_importing_its_compiler() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "compiler after eager training: False" in lines
    for kind in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
        assert f"{kind} equal: True" in lines


def test_fit_trains_without_importing_torchs_compiler() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "compiler after fit: False" in done.stdout.splitlines()


def test_eager_optimizer_still_runs_step_hooks() -> None:
    weight = nn.Parameter(torch.ones(3))
    optimizer = make_optimizer("sgd", [weight], lr=0.5)
    calls = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    weight.grad = torch.ones(3)
    optimizer.step()
    assert calls == ["pre", "post"]
    assert torch.equal(weight.detach(), torch.full((3,), 0.5))


def test_auto_precision_keeps_fp32_for_models_without_convolutions(monkeypatch) -> None:
    cpu = torch.device("cpu")
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    convnet = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu, mlp).name == "fp32"
    assert resolve_precision("auto", cpu, convnet).name == "bf16"
    assert resolve_precision("auto", cpu).name == "bf16"  # no model given: as before
    assert resolve_precision("bf16", cpu, mlp).name == "bf16"  # asked for: given
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu, convnet).name == "fp32"
