"""Networks for framewise phoneme classification: the course's MLP, a strong MLP and a BiLSTM/GRU.

* :class:`FrameMLP` with ``hidden=(1024, 512, 128)`` and sigmoid is the ml2021spring-hw2 sample
  model (429-1024-512-128-39); with BatchNorm, a ReLU-family activation and dropout it is the
  strong MLP of the chapter's remedies (Ioffe & Szegedy 2015; Srivastava et al. 2014).
* :class:`SequenceRNN` reads whole utterances with a bidirectional LSTM or GRU (Graves & Schmidhuber
  2005, "Framewise phoneme classification with bidirectional LSTM"), one output per frame;
  padded batches are packed so the backward direction starts at each utterance's real end.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.data.timit import NUM_CLASSES, ROW_DIM
from trainlab.errors import ConfigError

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}"
        ) from None


class FrameMLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout] blocks, then a linear classifier.

    Args:
        in_features: row width (429 = 11 frames x 39).
        hidden: widths of the hidden layers.
        activation: a name in :data:`ACTIVATIONS`.
        batch_norm: normalise each hidden layer's pre-activations.
        dropout: drop probability after each hidden activation (also on the input when
            ``input_dropout`` > 0).
    """

    def __init__(
        self,
        in_features: int = ROW_DIM,
        hidden: tuple[int, ...] | list[int] = (1024, 512, 128),
        num_classes: int = NUM_CLASSES,
        activation: str = "sigmoid",
        batch_norm: bool = False,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
        width = in_features
        for h in hidden:
            # the BatchNorm shift makes the linear bias redundant
            layers.append(nn.Linear(width, h, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 429) -> (B, C)


class SequenceRNN(nn.Module):
    """Input projection, a bidirectional LSTM/GRU stack, and a per-frame classifier.

    ``forward(x, lengths)``: x (B, T, D) padded utterances, lengths (B,) -> logits (B, T, C);
    outputs at padded positions are zeros-in, meaningless-out and must be masked by the loss.
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
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ConfigError(f"rnn cell must be 'lstm' or 'gru', got {cell!r}")
        self.proj = nn.Sequential(
            nn.Linear(in_features, proj_size),
            nn.LayerNorm(proj_size),
            nn.GELU(),
            nn.Dropout(dropout),
        )
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            proj_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden_size, num_classes))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[1]
        h = self.proj(x)  # (B, T, D) -> (B, T, P)
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, 2H)
        return self.head(out)  # (B, T, C)


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
