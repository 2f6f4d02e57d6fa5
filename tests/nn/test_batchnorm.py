"""trainlab's BatchNorm against nn.BatchNorm1d/2d: forward, backward, running statistics, modes,
state dicts, dtypes, double backward."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.nn import BatchNorm, BatchNorm1d, BatchNorm2d, batch_norm

F64 = torch.float64
TOL = {"rtol": 1e-6, "atol": 1e-6}
# Each reduction path: (200, 5) sums N in blocks (and a remainder), (4, 5, 10, 10) by rows.
SHAPES = [(16, 5), (200, 5), (8, 5, 7), (6, 5, 4, 3), (4, 5, 10, 10)]


def _pair(shape: tuple[int, ...], **kwargs: object) -> tuple[nn.Module, nn.Module]:
    """A torch layer and ours, same random γ/β (when affine), float64."""
    channels = shape[1]
    num_dims = 4 if len(shape) == 4 else 2
    ref_cls = nn.BatchNorm2d if num_dims == 4 else nn.BatchNorm1d
    ref = ref_cls(channels, **kwargs).to(F64)  # type: ignore[arg-type]
    ours = BatchNorm(channels, num_dims=num_dims, **kwargs).to(F64)  # type: ignore[arg-type]
    with torch.no_grad():
        if ref.weight is not None:
            ref.weight.uniform_(0.5, 1.5)
        if ref.bias is not None:
            ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _run(layer: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_()
    y = layer(x)
    names = [n for n in ("weight", "bias") if getattr(layer, n, None) is not None]
    grads = torch.autograd.grad(y, [x, *(getattr(layer, n) for n in names)], dy)
    out = {"y": y.detach(), "dx": grads[0]}
    out.update({f"d{n}": g for n, g in zip(names, grads[1:])})
    for name, buf in layer.named_buffers():
        out[name] = buf.clone()
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_matches_torch_over_steps_train_then_eval(shape, affine, momentum) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    ref, ours = _pair(shape, affine=affine, momentum=momentum)
    for step in range(4):
        mode = step < 3  # three training steps, then inference
        ref.train(mode)
        ours.train(mode)
        x = torch.randn(shape, dtype=F64) * 3 + 2
        dy = torch.randn(shape, dtype=F64)
        a, b = _run(ref, x, dy), _run(ours, x, dy)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], **TOL, msg=f"{key} at step {step}")
    assert int(ours.num_batches_tracked) == 3


@pytest.mark.parametrize("shape", [(16, 5), (4, 5, 10, 10)])
def test_without_running_stats_uses_batch_stats_in_eval(shape) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    ref, ours = _pair(shape, track_running_stats=False)
    assert set(ours.state_dict()) == set(ref.state_dict()) == {"weight", "bias"}
    for mode in (True, False):
        ref.train(mode)
        ours.train(mode)
        x, dy = torch.randn(shape, dtype=F64), torch.randn(shape, dtype=F64)
        a, b = _run(ref, x, dy), _run(ours, x, dy)
        for key in a:
            torch.testing.assert_close(b[key], a[key], **TOL)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(10, 3), (4, 3, 9, 8)])
def test_function_matches_f_batch_norm(training: bool, shape) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(2)
    c = shape[1]
    x = torch.randn(shape, dtype=F64)
    w, b = torch.rand(c, dtype=F64) + 0.5, torch.randn(c, dtype=F64)
    rm1, rv1 = torch.randn(c, dtype=F64), torch.rand(c, dtype=F64) + 0.5
    rm2, rv2 = rm1.clone(), rv1.clone()
    y1 = F.batch_norm(x, rm1, rv1, w, b, training, 0.2, 1e-3)
    y2 = batch_norm(x, rm2, rv2, w, b, training, 0.2, 1e-3)
    torch.testing.assert_close(y2, y1, **TOL)
    torch.testing.assert_close(rm2, rm1, **TOL)
    torch.testing.assert_close(rv2, rv1, **TOL)


def test_running_var_is_unbiased() -> None:
    x = torch.tensor([[1.0], [2.0], [4.0]], dtype=F64)
    rm, rv = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64)
    batch_norm(x, rm, rv, training=True, momentum=1.0)
    assert float(rm) == pytest.approx(7 / 3)
    assert float(rv) == pytest.approx(float(x.var(unbiased=True)))


def test_mode_follows_training_flag_not_grad_mode() -> None:
    torch.manual_seed(3)
    layer = BatchNorm1d(4)
    x = torch.randn(32, 4) * 2 + 1
    with torch.no_grad():  # train mode without gradients: batch statistics, buffers updated
        y = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    assert int(layer.num_batches_tracked) == 1
    assert not torch.equal(layer.running_mean, torch.zeros(4))
    layer.eval()
    before = layer.running_mean.clone()
    xg = x.clone().requires_grad_()
    y = layer(xg)  # eval mode with gradients on: running statistics, buffers fixed
    expected = (x - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps)
    torch.testing.assert_close(y.detach(), expected)
    torch.testing.assert_close(layer.running_mean, before)
    assert int(layer.num_batches_tracked) == 1
    y.sum().backward()
    assert xg.grad is not None


@pytest.mark.parametrize("num_dims, ref_cls", [(2, nn.BatchNorm1d), (4, nn.BatchNorm2d)])
def test_state_dict_round_trip_both_ways(num_dims: int, ref_cls: type[nn.Module]) -> None:
    torch.manual_seed(4)
    shape = (8, 6) if num_dims == 2 else (4, 6, 5, 5)
    ref = ref_cls(6)
    ours = BatchNorm(6, num_dims=num_dims)
    for _ in range(2):
        ref(torch.randn(shape) * 2 + 1)  # give the buffers non-default values
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.normal_()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    ours(torch.randn(shape))  # move ours on, then back into a fresh torch layer
    back = ref_cls(6)
    back.load_state_dict(ours.state_dict())
    assert int(back.num_batches_tracked) == 3
    ours.eval()
    back.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(ours(x), back(x))
    # A file saved by torch loads with weights_only.
    import io

    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    buf.seek(0)
    fresh = BatchNorm(6, num_dims=num_dims)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh.running_var, ref.running_var)


def test_old_state_dict_without_num_batches_tracked_loads() -> None:
    ref = nn.BatchNorm1d(3)
    sd = ref.state_dict()
    del sd["num_batches_tracked"]
    sd._metadata[""]["version"] = 1  # type: ignore[attr-defined]
    ours = BatchNorm1d(3)
    ours.num_batches_tracked.fill_(5)
    ours.load_state_dict(sd)
    assert int(ours.num_batches_tracked) == 0


def test_buffers_and_to_dtype() -> None:
    layer = BatchNorm2d(3)
    assert {n for n, _ in layer.named_buffers()} == {
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }
    layer.to(torch.float64)
    assert layer.weight.dtype == layer.running_mean.dtype == layer.running_var.dtype == F64
    assert layer.num_batches_tracked.dtype == torch.long
    y = layer(torch.randn(2, 3, 4, 4, dtype=F64))
    assert y.dtype == F64
    layer.to(torch.bfloat16)
    x = torch.randn(8, 3, 6, 6)
    y = layer(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    expected = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(
        x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5
    )
    torch.testing.assert_close(y.float(), expected, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("shape", [(64, 8, 6, 6), (1000, 8)])
def test_float32_accuracy_with_large_mean(shape) -> None:  # type: ignore[no-untyped-def]
    # Two-pass statistics: a mean 100x the spread must not ruin float32 results.
    torch.manual_seed(5)
    x64 = torch.randn(shape, dtype=F64) + 100
    dy64 = torch.randn_like(x64)
    cls = BatchNorm2d if len(shape) == 4 else BatchNorm1d
    ref = _run(cls(8).to(F64), x64, dy64)
    got = _run(cls(8), x64.float(), dy64.float())
    torch.testing.assert_close(got["y"].double(), ref["y"], atol=1e-3, rtol=0)
    torch.testing.assert_close(got["dx"].double(), ref["dx"], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(
        got["running_var"].double(), ref["running_var"], atol=1e-4, rtol=1e-4
    )


def test_channels_last_and_expanded_gradient() -> None:
    torch.manual_seed(6)
    x = torch.randn(4, 3, 9, 9, dtype=F64).to(memory_format=torch.channels_last).requires_grad_()
    ref, ours = _pair((4, 3, 9, 9))
    (ga,) = torch.autograd.grad((ref(x) ** 2).sum(), x)
    (gb,) = torch.autograd.grad((ours(x) ** 2).sum(), x)
    torch.testing.assert_close(gb, ga, **TOL)
    # y.sum() hands backward an expanded (stride-0) gradient
    (ga,) = torch.autograd.grad(ref(x).sum() + ref(x)[:, 0].sum(), x)
    (gb,) = torch.autograd.grad(ours(x).sum() + ours(x)[:, 0].sum(), x)
    torch.testing.assert_close(gb, ga, **TOL)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 3)])
def test_double_backward(shape) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(7)
    c = shape[1]
    x = torch.randn(shape, dtype=F64, requires_grad=True)
    w = (torch.rand(c, dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(c, dtype=F64, requires_grad=True)

    def fn(x, w, b):  # type: ignore[no-untyped-def]
        return batch_norm(x, None, None, w, b, training=True)

    assert torch.autograd.gradgradcheck(fn, (x, w, b))
    # Hessian-vector product against PyTorch's batch norm
    v = [torch.randn_like(t) for t in (x, w, b)]
    hv = []
    for impl in (fn, lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)):
        loss = (impl(x, w, b) ** 3).sum()
        grads = torch.autograd.grad(loss, (x, w, b), create_graph=True)
        dot = sum((g * vi).sum() for g, vi in zip(grads, v))
        hv.append(torch.autograd.grad(dot, (x, w, b)))
    for a, b_ in zip(*hv):
        torch.testing.assert_close(a, b_, **TOL)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="expected 4D input"):
        BatchNorm2d(3)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        BatchNorm1d(3)(torch.randn(4, 3, 2, 2))
    with pytest.raises(ValueError, match="3 channels"):
        BatchNorm1d(3)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="num_dims"):
        BatchNorm(3, num_dims=3)
    with pytest.raises(ValueError, match="running_mean"):
        batch_norm(torch.randn(4, 3), torch.zeros(2), torch.ones(3), training=True)
    BatchNorm1d(3).eval()(torch.randn(1, 3))  # one sample is fine at inference


def test_repr_and_reset() -> None:
    layer = BatchNorm(4, num_dims=4)
    assert "num_dims=4" in repr(layer)
    assert repr(BatchNorm2d(4)) == repr(nn.BatchNorm2d(4))
    layer(torch.randn(3, 4, 2, 2))
    layer.reset_parameters()
    assert int(layer.num_batches_tracked) == 0 and torch.equal(layer.running_var, torch.ones(4))


def test_many_configurations_quickly() -> None:
    # Cross product of the flags on a 3-D input, one training step each.
    for affine, bias, track, momentum in itertools.product(
        [True, False], [True, False], [True, False], [0.1, None]
    ):
        ref, ours = _pair(
            (5, 4, 6), affine=affine, bias=bias, track_running_stats=track, momentum=momentum
        )
        x, dy = torch.randn(5, 4, 6, dtype=F64), torch.randn(5, 4, 6, dtype=F64)
        a, b = _run(ref, x, dy), _run(ours, x, dy)
        for key in a:
            torch.testing.assert_close(b[key], a[key], **TOL)


@pytest.mark.parametrize("wanted", [("x",), ("weight",), ("bias",), ("weight", "bias")])
def test_partial_gradients(wanted: tuple[str, ...]) -> None:
    # Frozen input or frozen affine parameters: only the requested gradients are computed.
    torch.manual_seed(8)
    ref, ours = _pair((4, 3, 5, 5))
    x = torch.randn(4, 3, 5, 5, dtype=F64)
    dy = torch.randn_like(x)
    grads = []
    for layer in (ref, ours):
        xi = x.clone().requires_grad_("x" in wanted)
        tensors = {"x": xi, "weight": layer.weight, "bias": layer.bias}
        grads.append(torch.autograd.grad(layer(xi), [tensors[n] for n in wanted], dy))
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **TOL)
