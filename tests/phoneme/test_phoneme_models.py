"""The phoneme networks: the MLP on the shared builder, the bidirectional RNN against PyTorch's."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.errors import ConfigError
from trainlab.phoneme.models import BiRNN, FrameMLP, SequenceRNN


def _hand_built_mlp(hidden: list[int], activation: type, batch_norm: bool, dropout: float,
                    input_dropout: float) -> torch.nn.Sequential:  # fmt: skip
    """The frame MLP written out layer by layer, in the order the seeds depend on."""
    layers: list[torch.nn.Module] = [torch.nn.Dropout(input_dropout)] if input_dropout else []
    width = 429
    for h in hidden:
        layers.append(torch.nn.Linear(width, h, bias=not batch_norm))
        if batch_norm:
            layers.append(torch.nn.BatchNorm1d(h))
        layers.append(activation())
        if dropout:
            layers.append(torch.nn.Dropout(dropout))
        width = h
    layers.append(torch.nn.Linear(width, 39))
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize(
    ("hidden", "activation", "name", "batch_norm", "dropout", "input_dropout"),
    [([1024, 512, 128], torch.nn.Sigmoid, "sigmoid", False, 0.0, 0.0),
     ([64, 64], torch.nn.GELU, "gelu", True, 0.3, 0.1)],
)  # fmt: skip
def test_frame_mlp_keeps_the_layer_order_keys_and_seeded_weights(
    hidden, activation, name, batch_norm, dropout, input_dropout
):
    torch.manual_seed(0)
    ref = _hand_built_mlp(hidden, activation, batch_norm, dropout, input_dropout)
    torch.manual_seed(0)
    net = FrameMLP(429, hidden, 39, name, batch_norm, dropout, input_dropout)
    assert [type(m) for m in net.net] == [type(m) for m in ref]
    want = {f"net.{k}": v for k, v in ref.state_dict().items()}
    got = net.state_dict()
    assert list(got) == list(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)


@pytest.mark.parametrize("lengths", [[9, 4, 1], [9, 9, 9]])  # padded; none (reversal by flip)
def test_birnn_equals_packed_bidirectional_lstm_in_float64(lengths: list[int]):
    torch.manual_seed(0)
    lengths = torch.tensor(lengths)
    ref = torch.nn.LSTM(7, 5, num_layers=2, batch_first=True, bidirectional=True).double()
    ours = BiRNN(7, 5, 2, "lstm", dropout=0.0).double()
    for k in range(2):
        for suffix, layers in (("", ours.forward_layers), ("_reverse", ours.backward_layers)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layers[k], f"{name}_l0").data.copy_(getattr(ref, f"{name}_l{k}{suffix}"))
    x = torch.randn(3, 9, 7, dtype=torch.float64, requires_grad=True)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    want, _ = pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=9)
    got = ours(x, lengths)
    mask = (torch.arange(9)[None] < lengths[:, None])[..., None]  # (B, T, 1) real frames
    torch.testing.assert_close(got * mask, want * mask, atol=1e-12, rtol=1e-12)
    (gx_want,) = torch.autograd.grad((want * mask).square().sum(), x)
    (gx_got,) = torch.autograd.grad((got * mask).square().sum(), x)
    torch.testing.assert_close(gx_got, gx_want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(
    ("cell", "conv_layers", "num_layers", "stride"),
    [("lstm", 0, 2, 1), ("gru", 2, 2, 1), ("gru", 3, 0, 1), ("gru", 1, 2, 2), ("lstm", 0, 1, 3)],
)
def test_padding_does_not_change_a_sequences_outputs(
    cell: str, conv_layers: int, num_layers: int, stride: int
):
    torch.manual_seed(0)
    net = SequenceRNN(10, hidden_size=6, num_layers=num_layers, proj_size=6, cell=cell,
                      conv_layers=conv_layers, conv_kernel=3,
                      conv_dilations=(1, 2, 4), stride=stride).eval()  # fmt: skip
    x = torch.randn(1, 5, 10)
    padded = torch.cat([x, torch.randn(1, 4, 10)], dim=1)
    a = net(x, torch.tensor([5]))
    b = net(torch.cat([padded, padded]), torch.tensor([5, 9]))[0, :5]
    torch.testing.assert_close(a[0], b, atol=1e-6, rtol=1e-5)


def test_pool_time_averages_the_real_frames_of_each_step():
    from trainlab.phoneme.models import pool_time

    x = torch.arange(2 * 5 * 1, dtype=torch.float64).reshape(2, 5, 1)
    pooled, lengths = pool_time(x, torch.tensor([5, 3]), 2)
    assert lengths.tolist() == [3, 2] and pooled.shape == (2, 3, 1)
    assert pooled[0, :, 0].tolist() == [0.5, 2.5, 4.0]  # the last step holds one frame
    assert pooled[1, :2, 0].tolist() == [5.5, 7.0]  # frames 8, 9 are padding


def test_strided_recurrence_reads_full_rate_features_beside_it():
    from trainlab.phoneme.config import resolve_config
    from trainlab.phoneme.models import build_model, describe

    cfg = resolve_config("crnn", None, rnn_hidden=4, rnn_proj=6, rnn_stride=2, members=1)
    net = build_model(cfg)
    assert net.head[-1].in_features == 6 + 2 * 4
    assert net(torch.randn(2, 7, 117), torch.tensor([7, 4])).shape == (2, 7, 39)
    assert describe(cfg).endswith("every 2 frames")
    with pytest.raises(ConfigError, match="rnn_stride"):
        resolve_config("crnn", None, rnn_stride=0)


def test_mlp_forward_shapes():
    net = FrameMLP(hidden=[16, 8], activation="relu", batch_norm=True, dropout=0.1).eval()
    assert net(torch.randn(5, 429)).shape == (5, 39)
    with pytest.raises(ConfigError, match="activation"):
        FrameMLP(activation="swoosh")


def test_conv_front_end_is_residual_and_sees_neighbours():
    torch.manual_seed(0)
    net = SequenceRNN(8, hidden_size=4, num_layers=1, proj_size=4, conv_layers=1, conv_kernel=3)
    assert net.conv is not None and len(net.conv.blocks) == 1
    with pytest.raises(ConfigError, match="odd"):
        SequenceRNN(8, conv_layers=1, conv_kernel=4)
    conv = net.conv.eval()
    h = torch.randn(1, 7, 4)
    out = conv(h, torch.tensor([7]))
    h2 = h.clone()
    h2[0, 3] += 1.0  # frame 3 reaches frames 2..4 only (kernel 3)
    diff = (conv(h2, torch.tensor([7])) - out).abs().sum(-1)[0]
    assert (diff[[2, 3, 4]] > 0).all() and (diff[[0, 1, 5, 6]] == 0).all()


def test_tcn_context_is_the_dilated_receptive_field():
    """Without a recurrence, frame t's output depends on exactly the frames within
    sum((kernel - 1) / 2 * dilation) of t: (1 + 2 + 4) * 1 = 7 on each side for kernel 3."""
    torch.manual_seed(0)
    net = SequenceRNN(5, num_layers=0, proj_size=4, conv_layers=3, conv_kernel=3,
                      conv_dilations=(1, 2, 4)).eval()  # fmt: skip
    assert net.rnn is None and net.head[-1].in_features == 4
    x = torch.randn(1, 30, 5)
    base = net(x, torch.tensor([30]))
    x2 = x.clone()
    x2[0, 15] += 1.0
    changed = (net(x2, torch.tensor([30])) - base).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == list(range(8, 23))
    with pytest.raises(ConfigError, match="dilations"):
        SequenceRNN(5, num_layers=0, conv_layers=1, conv_dilations=(0,))


def test_members_average_probabilities():
    from trainlab.phoneme.models import Members

    torch.manual_seed(0)
    nets = [FrameMLP(hidden=[8], activation="relu").double() for _ in range(3)]
    ens = Members(nets).eval()
    x = torch.randn(6, 429, dtype=torch.float64)
    out = ens(x)
    mean = torch.stack([torch.softmax(n(x), -1) for n in nets]).mean(0)
    torch.testing.assert_close(out, mean.log())
    torch.testing.assert_close(out.log_softmax(-1), out)  # read as logits, unchanged


def test_build_model_draws_the_members_in_turn():
    from trainlab.phoneme.config import resolve_config
    from trainlab.phoneme.models import Members, build_model, describe

    cfg = resolve_config("tcn", None, conv_layers=2, rnn_proj=8, members=2)
    torch.manual_seed(0)
    ens = build_model(cfg)
    torch.manual_seed(0)
    first = build_model(resolve_config("tcn", None, conv_layers=2, rnn_proj=8))
    assert isinstance(ens, Members) and len(ens.members) == 2
    torch.testing.assert_close(ens.members[0].state_dict(), first.state_dict())
    assert not torch.equal(ens.members[1].head[-1].weight, first.head[-1].weight)
    assert describe(cfg) == "TCN 2x8 (kernel 5, dilations 1,2,4,8), 2 members"


def test_spec_masks_zero_spans_in_training_only():
    """Time masks zero whole time steps (at most count x width per sequence), feature masks the
    same coefficients in every frame of a row; evaluation mode leaves the input as it is."""
    from trainlab.phoneme.models import SpecMask

    torch.manual_seed(0)
    x = torch.rand(64, 50, 3 * 39) + 1.0  # no zero before masking
    masks = SpecMask(time_masks=2, time_width=5, feature_masks=1, feature_width=4).train()
    out = masks(x)
    zero_steps = (out == 0).all(dim=2)  # (B, T): time steps masked whole
    assert 0 < int(zero_steps.sum(dim=1).max()) <= 10
    cols = (out == 0).all(dim=1).reshape(64, 3, 39)  # coefficients masked in every time step
    assert torch.equal(cols[:, 0], cols[:, 1]) and torch.equal(cols[:, 0], cols[:, 2])
    assert 0 < int(cols[:, 0].sum(dim=1).max()) <= 4
    kept = out != 0
    assert torch.equal(out[kept], x[kept])
    assert torch.equal(masks.eval()(x), x)


def test_spec_masks_come_from_the_config():
    from trainlab.phoneme.config import PhonemeConfig
    from trainlab.phoneme.models import SpecMask, build_model

    net = build_model(PhonemeConfig(model="crnn", rnn_layers=1, time_masks=[2, 8]))
    assert isinstance(net.masks, SpecMask) and net.masks.time == (2, 8)
    assert build_model(PhonemeConfig(model="crnn", rnn_layers=1)).masks is None
    with pytest.raises(ConfigError, match="time_masks"):
        PhonemeConfig(time_masks=[1])
