"""Model registry: shapes, published parameter counts, options and errors."""

from __future__ import annotations

import pytest
import torch

from edgeopt.errors import EdgeoptError
from edgeopt.models import create_model, list_models, load_model, model_stats, save_model

PUBLISHED_PARAMS = {  # millions, CIFAR-10 (10 classes)
    "resnet20": (0.27, 0.01),
    "resnet56": (0.86, 0.01),
    "vgg16": (15.0, 0.4),
    "mobilenetv2": (2.2, 0.1),
    "resnet18": (11.2, 0.1),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_param_counts_match_published(name: str) -> None:
    params = sum(p.numel() for p in create_model(name).parameters()) / 1e6
    expected, tol = PUBLISHED_PARAMS[name]
    assert abs(params - expected) <= tol, f"{name}: {params:.3f}M params, expected ~{expected}M"


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
@pytest.mark.parametrize(("in_channels", "classes"), [(3, 10), (1, 5)])
def test_forward_shapes(name: str, in_channels: int, classes: int) -> None:
    model = create_model(name, num_classes=classes, in_channels=in_channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, 32, 32))
    assert out.shape == (2, classes)


def test_registry_lists_every_model() -> None:
    assert set(list_models()) == set(PUBLISHED_PARAMS)


def test_width_mult_shrinks_mobilenet() -> None:
    full = model_stats(create_model("mobilenetv2"))
    half = model_stats(create_model("mobilenetv2", width_mult=0.5))
    assert half["macs"] < 0.5 * full["macs"] and half["params"] < full["params"]


def test_width_mult_rounds_channels_to_multiple_of_8() -> None:
    model = create_model("resnet20", width_mult=0.6)
    widths = {m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert all(w % 8 == 0 for w in widths)


def test_unknown_model_is_one_line() -> None:
    with pytest.raises(EdgeoptError, match=r"unknown model 'resnet21' \(known: .*resnet20"):
        create_model("resnet21")


def test_bad_arguments() -> None:
    with pytest.raises(EdgeoptError, match="in_channels"):
        create_model("resnet20", in_channels=4)
    with pytest.raises(EdgeoptError, match="width_mult"):
        create_model("resnet18", width_mult=0.5)


def test_save_load_roundtrip(tmp_path) -> None:
    model = create_model("resnet20").eval()
    save_model(tmp_path / "m.pt", model, {"arch": "resnet20"})
    loaded, meta = load_model(tmp_path / "m.pt")
    x = torch.randn(1, 3, 32, 32)
    assert meta["arch"] == "resnet20"
    assert torch.equal(model(x), loaded(x))


def test_load_rejects_garbage(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(EdgeoptError, match="bad.pt"):
        load_model(bad)
