"""Fine-tuning: what is frozen stays as it was, BatchNorm statistics included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.data.dataset import Dataset
from cnnkit.errors import ConfigError
from cnnkit.evaluate.evaluation import evaluate_split
from cnnkit.evaluate.report import write_report
from cnnkit.run import Run
from cnnkit.train.loop import fit
from cnnkit.transfer.backbones import Backbone, load_backbone
from cnnkit.transfer.finetune import (
    FinetuneConfig,
    UnfreezeAfter,
    finetune,
    freeze,
    param_groups,
    parse_freeze,
    unfreeze,
)

pytestmark = pytest.mark.usefixtures("single_thread")  # small ops: see conftest

SIZE = 32  # input side: small, so a training step of EfficientNet-Lite0 takes milliseconds


@pytest.fixture
def digits(mnist_parts) -> Dataset:
    return mnist_parts["train"].subset(range(8))  # one batch: one optimizer step per epoch


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], model: nn.Module, prefix: str) -> list[str]:
    after = model.state_dict()
    return [
        k
        for k in before
        if k.startswith(prefix) and "num_batches" not in k and not torch.equal(before[k], after[k])
    ]


def train_briefly(model, digits, *, epochs=1, lr=1e-2, callbacks=()):
    optimizer = torch.optim.Adam(param_groups(model, lr=lr, backbone_lr_mult=1.0))
    fit(
        model,
        train=digits,
        preprocessing=Backbone.preprocessing_for(digits.image_shape),
        optimizer=optimizer,
        epochs=epochs,
        batch_size=8,
        callbacks=callbacks,
    )


def test_frozen_layers_and_their_batchnorm_statistics_do_not_change(lite0, digits) -> None:
    model = lite0.classifier_for(digits.image_shape, 10, input_size=SIZE)
    frozen = freeze(model, parse_freeze("until:blocks.5"))
    assert "features.backbone.blocks.5.project.bn.weight" in frozen.parameters
    assert "features.backbone.blocks.6.expand.conv.weight" not in frozen.parameters
    before = snapshot(model)
    train_briefly(model, digits)  # fit calls model.train() every epoch
    for prefix in (
        "features.backbone.stem.",
        *(f"features.backbone.blocks.{i}." for i in range(6)),
    ):
        assert changed(before, model, prefix) == [], prefix  # weights and running stats
    # layers after blocks.5 and the head did train, BatchNorm statistics included
    assert "features.backbone.blocks.10.expand.bn.running_mean" in changed(
        before, model, "features.backbone.blocks.10."
    )
    assert changed(before, model, "head.")
    frozen_bn = model.get_submodule("features.backbone.blocks.2.depthwise.bn")
    model.train()
    model(torch.rand(2, 1, 28, 28))
    assert not frozen_bn.training  # held in eval mode even inside model.train()


def test_freeze_all_trains_only_the_head(lite0, digits) -> None:
    model = lite0.classifier_for(digits.image_shape, 10, input_size=SIZE)
    freeze(model, parse_freeze("all"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    before = snapshot(model)
    train_briefly(model, digits)
    assert changed(before, model, "features.") == [] and changed(before, model, "head.")


def test_unfreeze_after_an_epoch(lite0, digits) -> None:
    model = lite0.classifier_for(digits.image_shape, 10, input_size=SIZE)
    frozen = freeze(model, parse_freeze("all"))
    before = snapshot(model)
    seen = []

    class Watch(UnfreezeAfter):
        def on_epoch_end(self, epoch, logs):
            seen.append(changed(before, model, "features.backbone.stem."))

    train_briefly(model, digits, epochs=2, callbacks=[Watch(model, frozen, 1)])
    assert seen[0] == [] and "features.backbone.stem.conv.weight" in seen[1]
    assert all(p.requires_grad for p in model.parameters()) and not frozen.norms


def test_discriminative_learning_rates(lite0) -> None:
    model = lite0.classifier_for((1, 28, 28), 10, input_size=SIZE)
    head, body = param_groups(model, lr=1e-3, backbone_lr_mult=0.1)
    assert head["lr"] == 1e-3 and body["lr"] == pytest.approx(1e-4)
    assert len(head["params"]) == 2
    assert len(head["params"]) + len(body["params"]) == len(list(model.parameters()))


def test_unfreeze_restores_everything(lite0) -> None:
    model = lite0.classifier_for((1, 28, 28), 10, input_size=SIZE)
    frozen = freeze(model, parse_freeze("until:top"))
    unfreeze(model, frozen)
    model.train()
    model(torch.rand(2, 1, 28, 28))
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("some", "--freeze 'some' is not understood; use all, none or until:LAYER"),
        ("until:", "is not understood"),
        ("until:block.8", "no layer 'block.8'. Did you mean 'blocks.8'"),
    ],
)
def test_bad_freeze_specs_are_refused(lite0, spec, message) -> None:
    model = lite0.classifier_for((1, 28, 28), 10, input_size=SIZE)
    with pytest.raises(ConfigError, match=message):
        freeze(model, parse_freeze(spec))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"freeze": "none", "unfreeze_after": 1}, "needs something frozen"),
        ({"unfreeze_after": 3, "epochs": 3}, "must be between 1 and epochs - 1"),
        ({"backbone": "resnet50"}, "unknown backbone 'resnet50'"),
    ],
)
def test_bad_finetune_configs_are_refused(tiny_mnist_dir, tmp_path, changes, message) -> None:
    from cnnkit.errors import CnnkitError

    config = FinetuneConfig(
        data="mnist", data_dir=str(tiny_mnist_dir), val_size=0, runs_dir=str(tmp_path), **changes
    )
    with pytest.raises(CnnkitError, match=message):
        finetune(config)
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_finetune_writes_a_run_that_evaluates_and_serves_as_a_backbone(
    tiny_mnist_dir, tmp_path
) -> None:
    config = FinetuneConfig(
        data="mnist",
        data_dir=str(tiny_mnist_dir),
        train_per_class=2,
        val_size=0,
        test_size=20,
        input_size=SIZE,
        freeze="until:blocks.10",
        epochs=1,
        batch_size=20,
        runs_dir=str(tmp_path),
        name="ft",
        device="cpu",
    )
    result = finetune(config)
    card = result.run.card
    assert card.model.name == "adapted" and card.data.sizes == {"train": 20, "test": 20}
    assert card.transfer is not None and card.transfer.freeze == "until:blocks.10"
    # `cnnkit evaluate` re-draws the same 20 test images and gets the same numbers
    again = evaluate_split(result.run.path, data_dir=str(tiny_mnist_dir), device="cpu").metrics
    assert again["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    assert again["loss"] == pytest.approx(result.metrics["test"]["loss"], rel=1e-4)
    assert again["balanced_accuracy"] == pytest.approx(result.metrics["test"]["balanced_accuracy"])
    # the evaluation report of issue 7 works on it like on any run
    report = write_report(result.run, data_dir=str(tiny_mnist_dir), device="cpu")
    assert report.name == "report.html" and report.stat().st_size > 10_000
    # and the fine-tuned run is a backbone in turn
    backbone = load_backbone(f"run:{result.run.path}")
    assert backbone.input_shape == (1, 28, 28) and backbone.num_features == 1280
    model = Run.open(result.run.path).load_model()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    nested = backbone.classifier_for((1, 28, 28), 3)  # its blocks are backbone.blocks.N now
    frozen = freeze(nested, parse_freeze("until:blocks.3"))
    assert "features.backbone.backbone.blocks.3.project.bn.weight" in frozen.parameters
    assert nested(torch.rand(2, 1, 28, 28)).shape == (2, 3)
