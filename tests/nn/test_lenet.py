"""LeNet-5: shapes, layer layout, scratch vs torch batch norm, describe()."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.nn import BatchNorm, LeNet, describe, lenet


@pytest.mark.parametrize("bn", ["none", "scratch", "torch"])
def test_output_shape_and_layers(bn: str) -> None:
    model = lenet(bn=bn)
    assert isinstance(model, LeNet)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("Conv2d") == 2 and kinds.count("Linear") == 3
    assert kinds.count("Sigmoid") == 4 and kinds.count("AvgPool2d") == 2
    norms = [m for m in model if isinstance(m, (BatchNorm, nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(norms) == (0 if bn == "none" else 4)
    if bn != "none":
        # each norm sits right after a conv/linear and right before a sigmoid
        names = list(dict(model.named_children()))
        for i in (1, 2, 3, 4):
            j = names.index(f"bn{i}")
            assert names[j - 1] in (f"conv{i}", f"fc{i}") and names[j + 1] == f"act{i}"
        assert [m.num_features for m in norms] == [6, 16, 120, 84]


def test_parameter_count_of_plain_lenet() -> None:
    # conv1 156 + conv2 2416 + fc 400·120+120 + 120·84+84 + 84·10+10
    assert sum(p.numel() for p in lenet().parameters()) == 156 + 2416 + 48120 + 10164 + 850


def test_options() -> None:
    model = lenet(bn="scratch", num_classes=5, in_channels=3, input_size=32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert LeNet(**model.config()).config() == model.config()
    with pytest.raises(ValueError, match="bn must be"):
        lenet(bn="batch")
    with pytest.raises(ValueError, match="too small"):
        lenet(input_size=8)


def test_scratch_and_torch_bn_lenet_agree() -> None:
    torch.manual_seed(0)
    scratch = lenet(bn="scratch").double()
    ref = lenet(bn="torch").double()
    assert list(scratch.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(scratch.state_dict())
    x = torch.randn(16, 1, 28, 28, dtype=torch.float64)
    y = torch.randint(0, 10, (16,))
    for model in (scratch, ref):
        model.train()
    for step in range(2):
        grads = []
        outs = []
        for model in (scratch, ref):
            out = model(x + step)
            loss = nn.functional.cross_entropy(out, y)
            grads.append(torch.autograd.grad(loss, list(model.parameters())))
            outs.append(out.detach())
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-6)
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for model in (scratch, ref):
        model.eval()
    torch.testing.assert_close(scratch(x), ref(x), rtol=1e-6, atol=1e-6)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(scratch.state_dict()[key], value, rtol=1e-6, atol=1e-6)


def test_describe_lists_layers_and_keeps_state() -> None:
    model = lenet(bn="scratch")
    model.train()
    text = describe(model, (1, 1, 28, 28))
    assert isinstance(text, str)
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "params"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert list(rows) == [name for name, _ in model.named_children()]
    assert "(1, 6, 28, 28)" in rows["conv1"] and "BatchNorm" in rows["bn1"]
    assert "(1, 16, 5, 5)" in rows["pool2"] and "(1, 400)" in rows["flatten"]
    assert "(1, 10)" in rows["fc5"]
    assert str(sum(p.numel() for p in model.parameters())) in lines[-1]
    # running statistics untouched, training mode restored
    assert int(model.bn1.num_batches_tracked) == 0
    assert model.training and model.bn1.training
