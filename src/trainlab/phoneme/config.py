"""Settings of a phoneme run: one typed dataclass and the registry of named presets.

The presets (:data:`PRESETS`: ``sample``, ``mlp``, ``rnn``, ``crnn``, ``tcn``) name the architectures too: a config's
``model`` is the preset it started from. A run's settings resolve in layers: the preset named by
``--model`` (or the file's ``model`` key, else :data:`DEFAULT_PRESET`), then the TOML/JSON file
given with ``--config``, then command-line flags. :func:`train_config` turns the settings into the
Trainer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab.config import from_dict, read_mapping, to_dict
from trainlab.errors import ConfigError, TrainlabError
from trainlab.phoneme.smoothing import SMOOTHERS
from trainlab.registry import Registry

if TYPE_CHECKING:
    from trainlab.train import TrainConfig

DEFAULT_PRESET = "crnn"
SEQUENCE_MODELS = ("rnn", "crnn", "tcn")  # presets whose network reads whole utterances
AUTO = "auto"  # the smoothing setting that picks the best method on the validation utterances


@dataclass
class PhonemeConfig:
    """Everything a phoneme run needs besides the data.

    Attributes:
        model: the preset and architecture: ``sample``/``mlp`` (framewise MLP), ``rnn``
            (bidirectional RNN), ``crnn`` (convolutional front end + bidirectional RNN) or ``tcn``
            (dilated convolutions over time, no recurrence); a name in :data:`PRESETS`.
        hidden: MLP hidden widths.
        activation: MLP activation, a name in :data:`trainlab.nn.mlp.ACTIVATIONS`.
        batch_norm: BatchNorm after each MLP hidden layer.
        dropout: dropout after each hidden layer (MLP) / between RNN layers.
        input_dropout: dropout on the MLP's input features.
        rnn_cell: ``lstm`` or ``gru``.
        rnn_hidden: RNN units per direction.
        rnn_layers: stacked bidirectional layers (0: none, the convolutions alone).
        rnn_proj: width of the RNN's input projection.
        rnn_stride: the recurrence reads every ``rnn_stride`` frames averaged into one step (1 =
            every frame); its outputs are repeated back to the frame rate and read with the
            full-rate features beside them, so a stride of 2 halves the recurrence's cost.
        rnn_frames: context frames of each row fed per time step (odd, 1..11).
        conv_layers: residual 1-D convolution blocks before the RNN (0 = none).
        conv_kernel: their kernel width in frames (odd).
        conv_dilations: their dilations, cycled over the blocks (``[1, 2, 4, 8]``: a TCN).
        chunk_frames: train the sequence model on pieces of this many frames cut from the
            utterances at random offsets each epoch (0 = whole utterances); validation and
            prediction always read whole utterances.
        time_masks: ``[count, width]``: SpecAugment time masks of the sequence models in training,
            ``count`` spans of up to ``width`` time steps zeroed per sequence (``[0, 0]``: none).
        feature_masks: ``[count, width]``: bands of up to ``width`` of each frame's 39
            coefficients zeroed per sequence in training (``[0, 0]``: none).
        members: networks of this design, member ``k`` trained as a run of its own seeded
            ``seed + k`` (in parallel processes on a multi-core CPU), their probabilities
            averaged (an ensemble; 1 = one network).
        member_folds: with several members, the validation utterances are dealt into one fold
            per member; member ``k`` validates on fold ``k`` and trains on every other utterance
            outside the hold-out, so the ensemble learns from all the validation data (each member
            from its share: 2 members at the default ratios read 6% more frames each). Validation scores and choices then use each fold's posteriors from the one
            member that did not train on it (out of fold). Off, or fewer validation utterances
            than members: every member trains on the same utterances and validates on all.
        utterances_per_batch: RNN batch size in utterances (in pieces with ``chunk_frames``).
        warmup: share of the training steps spent warming the learning rate up linearly (for the
            ``cosine`` and ``warmup`` schedules; a ``warmup_steps`` in ``scheduler_kwargs`` wins).
        epochs, batch_size, optimizer, lr, betas, weight_decay, scheduler, scheduler_kwargs,
        grad_clip, patience: training settings handed to the Trainer (batch_size: frames per MLP batch).
        label_smoothing: cross-entropy label smoothing.
        val_ratio: share of training frames held out for validation, as whole utterances: every
            choice (best epoch, smoothing) is made on them.
        holdout_ratio: share of training frames held out untouched, as whole utterances: no choice
            sees them; their accuracy is the run's unbiased estimate (0 = none).
        seed: seeds the split, initialisation and shuffling.
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        amp: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX).
        threads: CPU threads for PyTorch (0 = PyTorch's default; 1 is fastest on a busy machine).
        smoothing: post-processing for predictions: a name in
            :data:`trainlab.phoneme.smoothing.SMOOTHERS` (``none``, ``median``, ``majority``,
            ``viterbi``) or ``auto`` (the best of them on the validation utterances).
        median_windows: window sizes tried for the median/majority filters (best kept).
        transition_weights: Viterbi transition scales tried (best kept).
        prior_scales: Viterbi prior-division scales tried (best kept).
    """

    model: str = DEFAULT_PRESET
    hidden: list[int] = field(default_factory=lambda: [1024, 512, 128])
    activation: str = "sigmoid"
    batch_norm: bool = False
    dropout: float = 0.0
    input_dropout: float = 0.0
    rnn_cell: str = "lstm"
    rnn_hidden: int = 256
    rnn_layers: int = 3
    rnn_proj: int = 256
    rnn_stride: int = 1
    rnn_frames: int = 11
    conv_layers: int = 0
    conv_kernel: int = 5
    conv_dilations: list[int] = field(default_factory=lambda: [1])
    chunk_frames: int = 0
    time_masks: list[int] = field(default_factory=lambda: [0, 0])
    feature_masks: list[int] = field(default_factory=lambda: [0, 0])
    members: int = 1
    member_folds: bool = False
    utterances_per_batch: int = 16
    warmup: float = 0.0
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    scheduler: str = "constant"
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None
    patience: int | None = None
    label_smoothing: float = 0.0
    val_ratio: float = 0.1
    holdout_ratio: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    threads: int = 0
    smoothing: str = "auto"
    median_windows: list[int] = field(default_factory=lambda: [3, 5, 7, 9])
    transition_weights: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    prior_scales: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])

    def __post_init__(self) -> None:
        if self.model not in PRESETS:
            raise ConfigError(
                f"model must be one of {', '.join(PRESETS.names())}, got {self.model!r}"
            )
        if self.smoothing not in smoothing_choices():
            raise ConfigError(
                f"smoothing must be one of {', '.join(smoothing_choices())}, got {self.smoothing!r}"
            )
        if not 0.0 <= self.val_ratio < 1.0:
            raise ConfigError(f"val_ratio must be in [0, 1), got {self.val_ratio}")
        if not 0.0 <= self.holdout_ratio < 1.0 or self.val_ratio + self.holdout_ratio >= 1.0:
            raise ConfigError(
                f"holdout_ratio must be in [0, 1) and leave training data beside val_ratio, "
                f"got {self.holdout_ratio}"
            )
        if self.conv_layers < 0 or self.chunk_frames < 0 or not 0.0 <= self.warmup < 1.0:
            raise ConfigError("conv_layers and chunk_frames must be >= 0, warmup in [0, 1)")
        if self.rnn_frames % 2 != 1 or not 1 <= self.rnn_frames <= 11:
            raise ConfigError(f"rnn_frames must be odd and in 1..11, got {self.rnn_frames}")
        if min(self.epochs, self.batch_size, self.utterances_per_batch, self.members) < 1:
            raise ConfigError(
                "epochs, batch_size, utterances_per_batch and members must be at least 1"
            )
        for name in ("dropout", "input_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        sizes = [*self.hidden, self.rnn_hidden, self.rnn_proj, self.conv_kernel]
        if min(sizes) < 1 or self.rnn_layers < 0:
            raise ConfigError(
                f"layer widths and counts must be positive: hidden={self.hidden}, "
                f"rnn_hidden={self.rnn_hidden}, rnn_layers={self.rnn_layers}, "
                f"rnn_proj={self.rnn_proj}, conv_kernel={self.conv_kernel}"
            )
        if self.rnn_layers == 0 and self.conv_layers == 0:
            raise ConfigError("rnn_layers and conv_layers are both 0: the model has no layers")
        if self.rnn_stride < 1:
            raise ConfigError(f"rnn_stride must be at least 1, got {self.rnn_stride}")
        if not self.conv_dilations or min(self.conv_dilations) < 1:
            raise ConfigError(f"conv_dilations must be positive, got {self.conv_dilations}")
        for name in ("time_masks", "feature_masks"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) < 0:
                raise ConfigError(f"{name} must be [count, width], both >= 0, got {value}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not self.transition_weights or min(self.transition_weights) < 0:
            raise ConfigError(
                f"transition_weights must be non-empty and >= 0, got {self.transition_weights}"
            )
        if not self.prior_scales or min(self.prior_scales) < 0:
            raise ConfigError(f"prior_scales must be non-empty and >= 0, got {self.prior_scales}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: PyTorch's default), got {self.threads}")
        if not self.median_windows or any(w < 1 or w % 2 != 1 for w in self.median_windows):
            raise ConfigError(
                f"median_windows must be non-empty, odd and positive, got {self.median_windows}"
            )

    @property
    def sequence(self) -> bool:
        """Whether the model reads whole utterances."""
        return self.model in SEQUENCE_MODELS


def smoothing_choices() -> list[str]:
    """The values ``smoothing`` may take: every registered smoother, then ``auto``."""
    return [*SMOOTHERS.names(), AUTO]


PRESETS: Registry[Any] = Registry("phoneme model")

#: How every sequence preset trains: AdamW 3e-3 on a cosine schedule, clipped, label-smoothed.
_SEQUENCE_TRAINING: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 1e-2,
    "scheduler": "cosine",
    "grad_clip": 1.0,
    "label_smoothing": 0.1,
}


@PRESETS.register(
    "sample", "the course's 429-1024-512-128-39 sigmoid MLP, Adam 1e-4, batch 64, 20 epochs"
)
def _sample() -> PhonemeConfig:
    return PhonemeConfig(model="sample")


@PRESETS.register("mlp", "a wide BatchNorm/GELU MLP with dropout, AdamW and a cosine schedule")
def _mlp() -> PhonemeConfig:
    return PhonemeConfig(
        model="mlp",
        hidden=[1024, 1024, 1024, 1024],
        activation="gelu",
        batch_norm=True,
        dropout=0.3,
        input_dropout=0.1,
        epochs=25,
        batch_size=512,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=1e-2,
        scheduler="cosine",
        label_smoothing=0.1,
    )


@PRESETS.register(
    "rnn", "a 3-layer bidirectional LSTM over whole utterances, AdamW, cosine schedule"
)
def _rnn() -> PhonemeConfig:
    return PhonemeConfig(
        model="rnn",
        rnn_cell="lstm",
        rnn_hidden=256,
        rnn_layers=3,
        rnn_proj=256,
        rnn_frames=3,  # the recurrence supplies the wider context itself
        dropout=0.3,
        utterances_per_batch=16,
        epochs=30,
        **_SEQUENCE_TRAINING,
    )


@PRESETS.register(
    "crnn",
    "the default: an ensemble of 2 networks (convolutional front end + 2-layer bidirectional "
    "LSTM over pairs of frames), each validating on its own half of the validation utterances "
    "and training on the other, trained side by side on 1-s pieces of the utterances in bf16 "
    "where the hardware has it, AdamW, warm-up + cosine",
)
def _crnn() -> PhonemeConfig:
    return PhonemeConfig(
        model="crnn",
        rnn_cell="lstm",  # fused oneDNN kernels on a CPU: 0.77x the GRU's step time side by side
        rnn_hidden=192,
        rnn_layers=2,
        rnn_proj=192,
        rnn_stride=2,  # pairs of frames: 0.62x the time, validation equal within its noise
        rnn_frames=3,
        conv_layers=2,
        conv_kernel=3,  # 0.88-0.92x the step time of 5; validation 0.38 points higher (noise)
        chunk_frames=100,  # 1-s pieces: more updates per epoch and faster steps than 2-s ones
        utterances_per_batch=32,
        dropout=0.2,
        epochs=20,
        warmup=0.05,
        members=2,  # side by side, a process and a core each
        member_folds=True,  # validation out of fold 0.4-0.8 points higher on each of 3 splits
        amp=True,  # bf16 where the CPU computes it natively (or CUDA): 0.67x the step time
        **_SEQUENCE_TRAINING,
    )


@PRESETS.register(
    "tcn",
    "a temporal convolutional network, 8 residual dilated convolutions (dilations 1-8, about "
    "1.2 s of context) over whole utterances, AdamW, warm-up + cosine",
)
def _tcn() -> PhonemeConfig:
    return PhonemeConfig(
        model="tcn",
        rnn_layers=0,  # no recurrence: the convolutions see +-60 frames
        rnn_proj=192,  # 256: 0.2-0.3 points more validation accuracy (noise), 1.6x the time
        rnn_frames=3,
        conv_layers=8,
        conv_kernel=5,
        conv_dilations=[1, 2, 4, 8],
        utterances_per_batch=16,
        dropout=0.2,
        epochs=20,
        warmup=0.05,
        **_SEQUENCE_TRAINING,
    )


def preset(name: str) -> PhonemeConfig:
    """The preset configuration ``name`` (a name in :data:`PRESETS`).

    Raises:
        ConfigError: an unknown name.
    """
    return PRESETS.get(name)()


def resolve_config(
    model: str | None = None, path: str | Path | None = None, **overrides: Any
) -> PhonemeConfig:
    """Preset, then file, then overrides (``None`` values are ignored).

    Args:
        model: the preset; default: the file's ``model`` key, else :data:`DEFAULT_PRESET`.
        path: a TOML or JSON file of :class:`PhonemeConfig` settings.
        overrides: settings from the command line.

    Returns:
        The resolved configuration.
    """
    data = read_mapping(path) if path is not None else {}
    name = model or data.get("model") or DEFAULT_PRESET
    if not isinstance(name, str):
        raise ConfigError(f"{path}: model must be a string, got {name!r}")
    merged = to_dict(preset(name))
    merged.update(data)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    merged["model"] = name
    return from_dict(PhonemeConfig, merged, source=str(path) if path else "phoneme config")


def train_config(
    cfg: PhonemeConfig,
    out: str | Path,
    *,
    quiet: bool = False,
    has_val: bool = True,
    steps_per_epoch: int | None = None,
) -> TrainConfig:
    """The Trainer's settings for a phoneme run.

    An optimizer trainlab does not implement from scratch falls back to its ``torch_`` twin; an
    unregistered schedule is refused by :class:`~trainlab.train.TrainConfig`.

    Args:
        cfg: the run's settings.
        out: where the Trainer writes its checkpoints.
        quiet: no per-epoch output.
        has_val: whether there are validation batches (then the best epoch is the best
            validation accuracy, else the lowest training loss).
        steps_per_epoch: batches per epoch, to turn ``warmup`` into steps.

    Returns:
        The :class:`~trainlab.train.TrainConfig`.
    """
    from trainlab.optim import list_optimizers
    from trainlab.train import TrainConfig

    optimizer = cfg.optimizer
    # trainlab's from-scratch "adam" equals torch.optim.Adam; use torch's where it is not registered
    if optimizer not in list_optimizers() and f"torch_{optimizer}" in list_optimizers():
        optimizer = f"torch_{optimizer}"
    scheduler_kwargs = dict(cfg.scheduler_kwargs)
    if cfg.warmup and steps_per_epoch and cfg.scheduler in ("cosine", "warmup"):
        total = cfg.epochs * steps_per_epoch
        scheduler_kwargs.setdefault("warmup_steps", max(1, round(cfg.warmup * total)))
    return TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer=optimizer,
        optimizer_kwargs={"lr": cfg.lr, "betas": tuple(cfg.betas), **_fused(optimizer, cfg.device)},
        scheduler=cfg.scheduler,
        scheduler_kwargs=scheduler_kwargs,
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
        seed=cfg.seed,
        device=cfg.device,
        amp=cfg.amp,
        monitor="val_acc" if has_val else "train_loss",
        mode="max" if has_val else "min",
        patience=cfg.patience,
        out_dir=str(out),
        quiet=quiet,
    )


def _fused(optimizer: str, device: str) -> dict[str, bool]:
    """``{"fused": True}`` for torch's AdamW on a CPU or CUDA device (one kernel over every
    parameter instead of a dozen small ops per tensor: 0.98x the default's step on a CPU)."""
    from trainlab.device import resolve_device

    if optimizer != "adamw":
        return {}
    try:
        kind = resolve_device(device).type
    except TrainlabError:  # an unavailable device is refused later, with its own message
        return {}
    return {"fused": True} if kind in ("cpu", "cuda") else {}


__all__ = [
    "AUTO",
    "DEFAULT_PRESET",
    "SEQUENCE_MODELS",
    "PRESETS",
    "PhonemeConfig",
    "preset",
    "resolve_config",
    "smoothing_choices",
    "train_config",
]
