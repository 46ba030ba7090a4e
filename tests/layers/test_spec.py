"""Model specs: the shorthand forms, graphs, and clear errors for bad specs."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ModelError
from cnnkit.layers import Model, Sequential
from cnnkit.layers.spec import load_spec, model_from_spec
from cnnkit.models.resolve import resolve_model

pytestmark = pytest.mark.usefixtures("single_thread")


def test_shorthand_forms_build_the_same_layers() -> None:
    long = model_from_spec(
        {
            "layers": [
                {"Input": {"shape": [1, 8, 8]}},
                {"Conv2D": {"filters": 4, "kernel_size": 3}},
                {"MaxPooling2D": {"pool_size": 2}},
                {"Flatten": None},
                {"Dropout": {"rate": 0.5}},
                {"Dense": {"units": 3}},
            ]
        }
    )
    short = model_from_spec(
        {
            "input_shape": [1, 8, 8],
            "layers": [
                {"Conv2D": [4, 3]},
                {"MaxPooling2D": 2},
                "Flatten",
                {"Dropout": 0.5},
                {"Dense": 3},
            ],
        }
    )
    assert isinstance(short, Sequential)
    assert short.get_config() == long.get_config()


def test_a_graph_spec_names_its_inputs() -> None:
    spec = {
        "name": "graph",
        "layers": [
            {"Input": {"shape": [3, 8, 8], "name": "image"}},
            {"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same", "name": "a"}},
            {"Conv2D": {"filters": 4, "kernel_size": 1, "name": "b", "inputs": ["image"]}},
            {"Concatenate": {"inputs": ["a", "b"], "name": "both"}},
            {"GlobalAveragePooling2D": None},
            {"Dense": {"units": "num_classes"}},
        ],
    }
    model = model_from_spec(spec, num_classes=5)
    assert isinstance(model, Model) and not isinstance(model, Sequential)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 5)
    assert model.get_config()["layers"][3] == {
        "Concatenate": {"name": "both", "inputs": ["a", "b"]}
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"layer": []}, "unknown key 'layer'. Did you mean 'layers'"),
        ({"layers": []}, "'layers' must be a non-empty list"),
        ({"layers": ["Conv2d"]}, "layer 1: unknown layer type 'Conv2d'. Did you mean 'Conv2D'"),
        (
            {"layers": [{"Conv2D": {"filter": 3}}]},
            "layer 1 \\(Conv2D\\): unknown argument 'filter'\\. Did you mean 'filters'\\?",
        ),
        (
            {"layers": [{"Conv2D": {"filters": 3}}]},
            "layer 1 \\(Conv2D\\): missing a required argument: 'kernel_size'",
        ),
        ({"layers": [{"Dense": [3, "relu", True, 4]}]}, "layer 1 \\(Dense\\): too many positional"),
        (
            {"layers": [{"Conv2D": [8, 3], "Dense": 3}]},
            "layer 1 must be a layer name or a one-key mapping",
        ),
        (
            {"layers": [{"Dense": {"units": "num_classes"}}]},
            "uses 'num_classes'; give the class count",
        ),
        ({"layers": [{"Dropout": 2}]}, "layer 1 \\(Dropout\\): Dropout: rate must be in"),
        (
            {"layers": [{"Input": [4]}, {"Dense": {"units": 2, "inputs": ["nowhere"]}}]},
            "takes inputs 'nowhere', which no earlier layer is named; earlier layers: input",
        ),
        ({"layers": ["Flatten", {"Input": [3]}]}, "Input may only be the first layer"),
        (
            {"layers": [{"Input": [1, 28, 28]}, {"Dense": 10}]},
            "'dense' \\(Dense\\) expects input shape \\(features,\\) but got \\(1, 28, 28\\)",
        ),
    ],
)
def test_bad_specs_fail_clearly(spec, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        model_from_spec(spec, source="net.yaml")


def test_errors_name_the_spec_file(tmp_path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(
        "layers:\n  - Input: [1, 8, 8]\n  - Conv2D: [4, 9]\n  - Flatten\n  - Dense: 2\n"
    )
    with pytest.raises(ModelError, match=rf"^{path}: layer 'conv2d' \(Conv2D\): a 9x9 window"):
        resolve_model(str(path), input_shape=None, num_classes=None)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.yaml", None, "no such model spec file"),
        ("broken.yaml", "layers: [Conv2D: {", "not valid YAML"),
        ("broken.json", "{layers: ", "not valid JSON"),
        ("list.yaml", "- Conv2D", "a model spec is a mapping with a 'layers' list"),
    ],
)
def test_bad_spec_files(tmp_path, name: str, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(ModelError, match=message):
        load_spec(tmp_path / name)


def test_registry_names_and_spec_files_resolve_alike(tmp_path) -> None:
    model, record = resolve_model("minimal", input_shape=None, num_classes=None)
    assert record == {
        "name": "minimal",
        "options": {},
        "input_shape": [1, 28, 28],
        "num_classes": 10,
    }
    path = tmp_path / "minimal.json"
    import json

    path.write_text(json.dumps(model.get_config()))
    again, record = resolve_model(str(path), input_shape=None, num_classes=None)
    assert record["name"] == "minimal" and record["spec"] == model.get_config()
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ModelError, match="no input shape"):
        resolve_model({"layers": ["Flatten", {"Dense": 2}]}, input_shape=None, num_classes=None)
