"""Networks for framewise phoneme classification: the course's MLP, a strong MLP, a BiLSTM/GRU, a TCN.

* :class:`FrameMLP` with ``hidden=(1024, 512, 128)`` and sigmoid is the ml2021spring-hw2 sample
  model (429-1024-512-128-39); with BatchNorm, a ReLU-family activation and dropout it is the
  strong MLP of the chapter's remedies (Ioffe & Szegedy 2015; Srivastava et al. 2014).
* :class:`SequenceRNN` reads whole utterances with a bidirectional LSTM or GRU (Graves & Schmidhuber
  2005, "Framewise phoneme classification with bidirectional LSTM"), one output per frame; the
  backward direction starts at each utterance's real end (:class:`BiRNN`). An optional
  convolutional front end (:class:`ConvFrontEnd`, residual 1-D convolutions over time, as in
  CRNN/DeepSpeech-style acoustic models) supplies local context before the recurrence; with
  dilated convolutions and no recurrence it is a temporal convolutional network (TCN).

:func:`build_model` turns a :class:`~trainlab.phoneme.config.PhonemeConfig` into one of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainlab.errors import ConfigError
from trainlab.nn.dropout import Dropout
from trainlab.nn.mlp import mlp
from trainlab.phoneme.config import PhonemeConfig
from trainlab.phoneme.files import FEATURE_DIM, NUM_CLASSES, ROW_DIM


class FrameMLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout] blocks, then a linear classifier.

    The layers are :func:`trainlab.nn.mlp.mlp`'s, held as ``self.net``; with BatchNorm the hidden
    Linear layers have no bias (the BatchNorm shift makes it redundant).

    Args:
        in_features: row width (429 = 11 frames x 39).
        hidden: widths of the hidden layers.
        num_classes: output width.
        activation: a name in :data:`trainlab.nn.mlp.ACTIVATIONS`.
        batch_norm: normalise each hidden layer's pre-activations.
        dropout: drop probability after each hidden activation.
        input_dropout: drop probability on the input features.
    """

    def __init__(
        self,
        in_features: int = ROW_DIM,
        hidden: Sequence[int] = (1024, 512, 128),
        num_classes: int = NUM_CLASSES,
        activation: str = "sigmoid",
        batch_norm: bool = False,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = mlp(
            in_features,
            hidden,
            num_classes,
            activation,
            batch_norm=batch_norm,
            dropout=dropout,
            input_dropout=input_dropout,
            hidden_bias=not batch_norm,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 429) -> (B, C)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of a padded batch within its own length; padding stays at the end.

    (B, T, D) -> (B, T, D). Applying it twice gives ``x`` back.
    """
    t = x.shape[1]
    if bool((lengths == t).all()):  # no padding (most training batches): a flip, cheaper
        return x.flip(1)
    steps = torch.arange(t, device=x.device)[None, :]  # (1, T)
    lengths = lengths.to(x.device)[:, None]  # (B, 1)
    idx = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    return x.gather(1, idx[:, :, None].expand_as(x))


class BiRNN(nn.Module):
    """A stack of bidirectional LSTM/GRU layers over padded batches, exact without packing.

    The forward direction runs over the padded batch as is (padding comes after every real frame,
    so it cannot reach them); the backward direction runs over each sequence reversed within its
    length. This equals ``nn.LSTM(bidirectional=True)`` on a packed batch, and its backward pass
    avoids the packed kernels, which are many times slower on CPUs. Dropout acts between layers.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, cell: str, dropout: float
    ) -> None:
        super().__init__()
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(
            rnn_cls(n, hidden_size, batch_first=True) for n in sizes
        )
        self.backward_layers = nn.ModuleList(
            rnn_cls(n, hidden_size, batch_first=True) for n in sizes
        )
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = x
        for k, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if k > 0:
                h = self.dropout(h)
            f, _ = fwd(h)  # (B, T, H)
            b, _ = bwd(reverse_padded(h, lengths))
            h = torch.cat([f, reverse_padded(b, lengths)], dim=-1)  # (B, T, 2H)
        return h


class ConvFrontEnd(nn.Module):
    """Residual blocks ``x + Dropout(GELU(BatchNorm(Conv1d(x))))`` over time, padding held at zero.

    (B, T, C) -> (B, T, C). Frames past each sequence's length are zeroed before every
    convolution, so a sequence's outputs do not depend on the padding after it. Block ``i`` is
    dilated by ``dilations[i % len(dilations)]`` (a temporal convolutional network, Bai et al.
    2018, with dilations 1, 2, 4, 8: each block of kernel k widens the context by
    ``(k - 1) * dilation`` frames).
    """

    def __init__(
        self,
        channels: int,
        layers: int,
        kernel: int,
        dropout: float,
        dilations: Sequence[int] = (1,),
    ) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ConfigError(f"conv_kernel must be odd, got {kernel}")
        if not dilations or min(dilations) < 1:
            raise ConfigError(f"conv_dilations must be positive, got {list(dilations)}")
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(
                    channels, channels, kernel, padding=d * (kernel // 2), dilation=d, bias=False
                ),  # fmt: skip
                nn.BatchNorm1d(channels),
                nn.GELU(),
                Dropout(dropout),
            )
            for d in (dilations[i % len(dilations)] for i in range(layers))
        )

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[1]
        mask = (torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None])[:, None]
        h = x.transpose(1, 2)  # (B, C, T)
        for block in self.blocks:
            h = h + block(h * mask)
        return h.transpose(1, 2)


def pool_time(x: Tensor, lengths: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Average each run of ``stride`` frames of a padded batch into one step, padding excluded.

    (B, T, D), (B,) -> (B, ceil(T / stride), D), (B,) the new lengths ``ceil(lengths / stride)``;
    a sequence's steps do not depend on the padding after it.
    """
    b, t, d = x.shape
    steps = -(-t // stride)
    real = torch.arange(steps * stride, device=x.device)[None, :] < lengths.to(x.device)[:, None]
    padded = nn.functional.pad(x, (0, 0, 0, steps * stride - t)) * real[:, :, None]
    total = padded.reshape(b, steps, stride, d).sum(2)
    count = real.reshape(b, steps, stride).sum(2, keepdim=True).clamp(min=1)
    return total / count.to(x.dtype), -(-lengths // stride)


class SpecMask(nn.Module):
    """SpecAugment's masks (Park et al. 2019) on padded framewise features, in training mode only.

    Each sequence gets ``time_masks`` spans of 0..``time_width`` consecutive time steps zeroed and
    ``feature_masks`` bands of 0..``feature_width`` coefficients zeroed in every frame of its
    rows (a row holds several frames of ``frame_dim`` coefficients; the band is the same in each).
    The draws come from PyTorch's global generator, as dropout's do. In evaluation mode, and with
    no masks, it returns its input.

    (B, T, D) -> (B, T, D).
    """

    def __init__(
        self,
        time_masks: int = 0,
        time_width: int = 0,
        feature_masks: int = 0,
        feature_width: int = 0,
        frame_dim: int = FEATURE_DIM,
    ) -> None:
        super().__init__()
        self.time = (time_masks, time_width)
        self.feature = (feature_masks, feature_width)
        self.frame_dim = frame_dim

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not (
            self.time[0] * self.time[1] or self.feature[0] * self.feature[1]
        ):
            return x
        b, t, d = x.shape
        keep_t = _spans(b, t, *self.time, x.device)  # (B, T)
        cols = torch.arange(d, device=x.device) % self.frame_dim
        keep_f = _spans(b, self.frame_dim, *self.feature, x.device)[:, cols]  # (B, D)
        return x * (keep_t[:, :, None] & keep_f[:, None, :]).to(x.dtype)


def _spans(b: int, n: int, count: int, width: int, device: torch.device) -> Tensor:
    """(b, n) booleans: False on ``count`` random spans of 0..``width`` positions per row."""
    keep = torch.ones(b, n, dtype=torch.bool, device=device)
    pos = torch.arange(n, device=device)[None, :]
    for _ in range(count if width else 0):
        w = torch.randint(0, min(width, n) + 1, (b, 1), device=device)
        start = (torch.rand(b, 1, device=device) * (n - w + 1)).long()
        keep &= ~((pos >= start) & (pos < start + w))
    return keep


class SequenceRNN(nn.Module):
    """Input projection, [a convolutional front end], a bidirectional LSTM/GRU stack, a classifier.

    With ``num_layers=0`` there is no recurrence: the classifier reads the convolutions' output
    (a purely convolutional sequence model: no step waits for the one before, as a recurrence's do).

    ``forward(x, lengths)``: x (B, T, D) padded utterances, lengths (B,) -> logits (B, T, C);
    outputs at padded positions are meaningless and must be masked by the loss.
    """

    def __init__(
        self,
        in_features: int = ROW_DIM,
        hidden_size: int = 256,
        num_layers: int = 3,
        num_classes: int = NUM_CLASSES,
        cell: str = "lstm",
        dropout: float = 0.3,
        proj_size: int = 256,
        conv_layers: int = 0,
        conv_kernel: int = 5,
        conv_dilations: Sequence[int] = (1,),
        masks: SpecMask | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ConfigError(f"rnn cell must be 'lstm' or 'gru', got {cell!r}")
        self.masks = masks
        self.proj = nn.Sequential(
            nn.Linear(in_features, proj_size),
            nn.LayerNorm(proj_size),
            nn.GELU(),
            Dropout(dropout),
        )
        self.conv = (
            ConvFrontEnd(proj_size, conv_layers, conv_kernel, dropout, conv_dilations)
            if conv_layers
            else None
        )
        self.rnn = BiRNN(proj_size, hidden_size, num_layers, cell, dropout) if num_layers else None
        self.stride = stride
        width = 2 * hidden_size if num_layers else proj_size
        width += proj_size if num_layers and stride > 1 else 0  # the full-rate features beside
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.masks is not None:
            x = self.masks(x)
        h = self.proj(x)  # (B, T, D) -> (B, T, P)
        if self.conv is not None:
            h = self.conv(h, lengths)
        if self.rnn is not None and self.stride > 1:
            steps, step_lengths = pool_time(h, lengths, self.stride)  # (B, T/s, P)
            r = self.rnn(steps, step_lengths).repeat_interleave(self.stride, dim=1)
            h = torch.cat([h, r[:, : h.shape[1]]], dim=-1)  # (B, T, P + 2H)
        elif self.rnn is not None:
            h = self.rnn(h, lengths)  # (B, T, P) -> (B, T, 2H)
        return self.head(h)  # -> (B, T, C)


class Members(nn.Module):
    """An ensemble of networks of one design, read as one: the log of their mean softmax probability.

    The output is log-probabilities, which ``log_softmax`` leaves unchanged, so inference,
    validation and smoothing read it as any network's logits. The members are trained one by one
    as networks of their own (:func:`trainlab.phoneme.fitting.fit_ensemble`).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *inputs: Tensor) -> Tensor:
        logp = torch.stack([_at_least_float(m(*inputs)).log_softmax(dim=-1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


def _at_least_float(x: Tensor) -> Tensor:
    """``x`` in float32 if it is in a lower precision (bf16 autocast), else as it is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class FlatFrames(nn.Module):
    """Wraps a :class:`SequenceRNN` so its outputs are (B*T, C), one row per (padded) frame.

    Batches of different lengths then concatenate for validation metrics, and the loss is a plain
    cross-entropy whose padded targets are ``-100`` (ignored).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out = self.net(x, lengths)
        return out.reshape(-1, out.shape[-1])  # (B, T, C) -> (B*T, C)


def build_model(config: PhonemeConfig) -> nn.Module:
    """The network ``config`` describes: a :class:`SequenceRNN` for sequence presets, else a
    :class:`FrameMLP`; with ``config.members > 1``, that many of them in :class:`Members`.

    Args:
        config: the run's settings.

    Returns:
        The untrained network (weights drawn from torch's global generator, member after member;
        training replaces member ``k``'s with those of its own run seeded ``seed + k``).
    """
    if config.members > 1:
        return Members([_build_one(config) for _ in range(config.members)])
    return _build_one(config)


def describe(config: PhonemeConfig) -> str:
    """The architecture in a few words (``bi-GRU 2x192 after 2 convolutions``, ``TCN 8x256``)."""
    if not config.sequence:
        widths = "-".join(str(h) for h in [ROW_DIM, *config.hidden, NUM_CLASSES])
        text = f"MLP {widths} ({config.activation})"
    elif config.rnn_layers == 0:
        dil = ",".join(str(d) for d in config.conv_dilations)
        text = f"TCN {config.conv_layers}x{config.rnn_proj} (kernel {config.conv_kernel}, dilations {dil})"
    else:
        text = f"bi-{config.rnn_cell.upper()} {config.rnn_layers}x{config.rnn_hidden}"
        if config.conv_layers:
            text += f" after {config.conv_layers} convolutions"
        if config.rnn_stride > 1:
            text += f", every {config.rnn_stride} frames"
    return text + (f", {config.members} members" if config.members > 1 else "")


def _masked(config: PhonemeConfig) -> bool:
    return any(n * w for n, w in (config.time_masks, config.feature_masks))


def _build_one(config: PhonemeConfig) -> nn.Module:
    if config.sequence:
        return SequenceRNN(
            in_features=FEATURE_DIM * config.rnn_frames,
            hidden_size=config.rnn_hidden,
            num_layers=config.rnn_layers,
            cell=config.rnn_cell,
            dropout=config.dropout,
            proj_size=config.rnn_proj,
            conv_layers=config.conv_layers,
            conv_kernel=config.conv_kernel,
            conv_dilations=config.conv_dilations,
            masks=SpecMask(*config.time_masks, *config.feature_masks) if _masked(config) else None,
            stride=config.rnn_stride,
        )
    return FrameMLP(
        ROW_DIM,
        config.hidden,
        NUM_CLASSES,
        config.activation,
        config.batch_norm,
        config.dropout,
        config.input_dropout,
    )
