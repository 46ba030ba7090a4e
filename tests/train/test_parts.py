"""The engine's parts: schedules, losses, optimizers, precision (augmentation: tests/augment)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from cnnkit.errors import ConfigError
from cnnkit.train import precision as precision_module
from cnnkit.train.losses import make_loss, soft_targets
from cnnkit.train.optim import make_optimizer
from cnnkit.train.precision import resolve_precision
from cnnkit.train.schedules import Schedule

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py

# -- schedules ----------------------------------------------------------------------------


def factors(text: str, epochs: int = 10, per_epoch: int = 10) -> list[float]:
    schedule = Schedule.parse(text)
    total = epochs * per_epoch
    return [schedule.factor(s, steps_per_epoch=per_epoch, total_steps=total) for s in range(total)]


def test_constant_and_step_schedules() -> None:
    assert set(factors("constant")) == {1.0}
    steps = factors("step:every=3,gamma=0.5")
    assert steps[29] == 1.0 and steps[30] == 0.5 and steps[60] == 0.25 and steps[99] == 0.125


def test_cosine_runs_from_one_down_to_final() -> None:
    values = factors("cosine:final=0.1")
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert values[50] == pytest.approx(0.55, abs=0.02)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_onecycle_peaks_at_its_peak_fraction_then_decays() -> None:
    values = factors("onecycle:peak=0.3")
    top = max(range(100), key=values.__getitem__)
    assert 28 <= top <= 30 and values[top] == pytest.approx(1.0, abs=0.05)
    assert values[0] < 0.05 and values[-1] < 0.02


def test_warmup_ramps_linearly_before_any_schedule() -> None:
    values = factors("cosine:warmup=2")
    assert values[:3] == pytest.approx([0.05, 0.1, 0.15]) and values[19] == 1.0
    assert values[20] == 1.0 and values[-1] < 0.01


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("linear", "unknown schedule 'linear'"),
        ("cosine:warmup", "must be key=value"),
        ("cosine:speed=2", "must be key=value"),
        ("step:every=x", "needs a number"),
        ("onecycle:peak=1.5", "need 0 < peak < 1"),
        ("cosine:warmup=-1", "warmup must be >= 0"),
    ],
)
def test_bad_schedules_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Schedule.parse(text)


# -- losses -------------------------------------------------------------------------------


def test_cross_entropy_takes_sparse_or_one_hot_labels_and_smooths() -> None:
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    loss = make_loss("cross_entropy", label_smoothing=0.1)
    sparse, dense = loss(logits, labels), loss(logits, F.one_hot(labels, 5).float())
    assert sparse == pytest.approx(float(dense), rel=1e-5)
    assert sparse == pytest.approx(float(F.cross_entropy(logits, labels, label_smoothing=0.1)))


def test_binary_cross_entropy_and_mse_use_one_hot_targets() -> None:
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    one_hot = F.one_hot(labels, 5).float()
    bce = -(one_hot * F.logsigmoid(logits) + (1 - one_hot) * F.logsigmoid(-logits)).mean()
    assert make_loss("binary_cross_entropy")(logits, labels) == pytest.approx(float(bce))
    mse = ((logits.softmax(1) - one_hot) ** 2).mean()
    assert make_loss("mse")(logits, labels) == pytest.approx(float(mse))


def test_bad_loss_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        make_loss("hinge")
    with pytest.raises(ConfigError, match=r"label smoothing must be in \[0, 1\)"):
        make_loss("cross_entropy", label_smoothing=1.0)
    with pytest.raises(ConfigError, match=r"fit neither sparse labels \(N,\) nor one-hot"):
        soft_targets(torch.zeros(4, 3), 5)


# -- optimizers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_takes_a_step(name: str) -> None:
    layer = torch.nn.Linear(3, 2)
    before = layer.weight.detach().clone()
    momentum = 0.9 if name in ("sgd", "rmsprop") else 0.0
    optimizer = make_optimizer(name, layer.parameters(), lr=0.1, momentum=momentum)
    layer(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, layer.weight)


def test_bad_optimizer_arguments() -> None:
    params = list(torch.nn.Linear(3, 2).parameters())
    with pytest.raises(ConfigError, match="nesterov needs the sgd optimizer and a momentum"):
        make_optimizer("sgd", params, lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="adam has no momentum setting"):
        make_optimizer("adam", params, lr=0.1, momentum=0.9)
    with pytest.raises(ConfigError, match="learning rate must be positive"):
        make_optimizer("adam", params, lr=0)
    with pytest.raises(ConfigError, match="must be >= 0"):
        make_optimizer("adam", params, lr=0.1, weight_decay=-1)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        make_optimizer("adam", [p.requires_grad_(False) for p in params], lr=0.1)


# -- precision ----------------------------------------------------------------------------


def test_auto_precision_follows_the_cpu(monkeypatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu).name == "bf16"
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu).name == "fp32"
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16


def test_bad_precisions() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16 training is for CUDA GPUs"):
        resolve_precision("fp16", torch.device("cpu"))
