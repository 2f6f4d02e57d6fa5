"""A test bed of deliberately broken trainings, each with a known cause, each seconds on a CPU.

Every case trains with trainlab's :func:`~trainlab.train.fit` and the doctor's callback into a
run folder, on synthetic data drawn from its own generator, so ``seed``, ``width``, ``n`` (rows)
and ``task`` (``classification`` or ``regression``) can be varied and the doctor must name the
cause across the variations, not for one tuned instance. The data: Gaussian inputs in ``dim``
dimensions labelled by a random two-layer tanh teacher network (the arg-max of its outputs for
classification, its first output for regression), standardised, split into training and
validation rows.

===================  ================================================================  ===============
case                 what is broken                                                    expected cause
===================  ================================================================  ===============
``lr_too_high``      SGD (or Adam) with a learning rate 100-1000x a good one           lr_too_high
``lr_too_low``       SGD (or Adam) with a learning rate 1000x below a good one         lr_too_low
``vanishing``        an 8-layer sigmoid MLP initialised with N(0, 0.01²), SGD          vanishing_gradients
``saddle``           the zero-weight tanh MLP: every weight and bias 0, an exact saddle saddle_point
``overfitting``      a 2x256 MLP on 300 noisy rows for many epochs                     overfitting
``shuffled_labels``  a 2x256 MLP on 512 rows whose training labels are shuffled        overfitting
``model_bias``       a linear model on a problem whose classes are shells |x| = r      model_bias
``dead_units``       a ReLU MLP whose biases start at -4: almost every unit dead        dead_units
``ill_conditioned``  input features scaled from 0.01 to 100, SGD at the stable lr       ill_conditioned
``exploding``        a 10-layer ReLU MLP with weights 4x the He scale                  exploding_gradients
``healthy``          a 2-layer ReLU MLP, Adam 1e-3 (or momentum SGD) on standardised   healthy
                     inputs
===================  ================================================================  ===============

``run_case(name, out_dir, seed=..., width=..., n=..., task=...)`` trains one case and returns
its run folder (a run that diverges ends there, as a real one would).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.errors import TrainingDiverged
from trainlab.nn.mlp import mlp


@dataclass
class Data:
    """Training and validation rows of a synthetic problem."""

    x: Tensor
    y: Tensor
    x_val: Tensor
    y_val: Tensor
    classes: int  # 0: regression

    @property
    def out_features(self) -> int:
        return self.classes or 1

    def loss_fn(self) -> Callable[[Tensor, Tensor], Tensor]:
        return nn.functional.cross_entropy if self.classes else _mse


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.mse_loss(outputs.squeeze(-1), targets)


def teacher_data(
    n: int = 1024,
    dim: int = 16,
    classes: int = 4,
    seed: int = 0,
    n_val: int = 512,
    label_noise: float = 0.0,
    shells: bool = False,
) -> Data:
    """Gaussian inputs labelled by a random tanh teacher (or by shells of |x|), standardised.

    Args:
        n, n_val: training and validation rows.
        dim: input dimensions.
        classes: classes (0: regression on the teacher's first output).
        seed: seeds the data's own generator.
        label_noise: share of training labels replaced by random ones (classification).
        shells: label by the radius |x| (quantiles), a problem no linear model can fit.
    """
    g = torch.Generator().manual_seed(10_000 + seed)
    total = n + n_val
    x = torch.randn(total, dim, generator=g)
    if shells:
        r = x.norm(dim=1)
        k = max(classes, 2)
        edges = torch.quantile(r, torch.linspace(0, 1, k + 1)[1:-1])
        y: Tensor = torch.bucketize(r, edges)
        if not classes:
            y = (r - r.mean()) / r.std()
    else:
        hidden = 32
        w1 = torch.randn(dim, hidden, generator=g) * (2.0 / math.sqrt(dim))
        w2 = torch.randn(hidden, max(classes, 1), generator=g) / math.sqrt(hidden)
        out = torch.tanh(x @ w1) @ w2
        if classes:
            y = out.argmax(1)
        else:
            t = out[:, 0]
            y = (t - t.mean()) / t.std()
    if classes and label_noise > 0:
        flip = torch.rand(n, generator=g) < label_noise
        y = y.clone()
        y[:n][flip] = torch.randint(0, classes, (int(flip.sum()),), generator=g)
    x = (x - x[:n].mean(0)) / x[:n].std(0)
    return Data(x[:n], y[:n], x[n:], y[n:], classes)


@dataclass
class Case:
    """One broken training: how to build it and which cause the doctor must name first."""

    name: str
    expected: str
    what: str
    build: Callable[..., tuple[nn.Module, Data, dict[str, Any]]]
    defaults: dict[str, Any] = field(default_factory=dict)


def _mlp_init(model: nn.Module, std: float | None = None, he: float | None = None,
              bias: float = 0.0) -> nn.Module:  # fmt: skip
    """Re-initialise every Linear: N(0, std²), or N(0, (he·√(2/fan_in))²); biases = ``bias``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                s = std if std is not None else (he or 1.0) * math.sqrt(2.0 / m.in_features)
                m.weight.normal_(0.0, s)
                if m.bias is not None:
                    m.bias.fill_(bias)
    return model


def _data(kw: dict[str, Any], **overrides: Any) -> Data:
    classes = 0 if kw["task"] == "regression" else kw.get("classes", 4)
    args = {"n": kw["n"], "dim": kw["dim"], "classes": classes, "seed": kw["seed"], **overrides}
    return teacher_data(**args)


def _optimizer(kw: dict[str, Any], sgd_lr: float, adam_lr: float) -> dict[str, Any]:
    """SGD (the default) or Adam at the given learning rates."""
    if kw.get("optimizer", "sgd") == "adam":
        return {"optimizer": "adam", "optimizer_kwargs": {"lr": adam_lr}}
    return {"optimizer": "sgd", "optimizer_kwargs": {"lr": sgd_lr}}


def _lr_too_high(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = mlp(data.x.shape[1], [kw["width"]] * 2, data.out_features, "relu")
    return model, data, {**_optimizer(kw, 30.0 if data.classes else 10.0, 1.0), "epochs": 10}


def _lr_too_low(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = mlp(data.x.shape[1], [kw["width"]] * 2, data.out_features, "relu")
    return model, data, {**_optimizer(kw, 1e-4, 1e-6), "epochs": 15}


def _vanishing(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = _mlp_init(mlp(data.x.shape[1], [kw["width"]] * 8, data.out_features, "sigmoid"), 0.01)
    return model, data, {"optimizer": "sgd", "optimizer_kwargs": {"lr": 0.1}, "epochs": 15}


def _saddle(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = mlp(data.x.shape[1], [kw["width"]], data.out_features, "tanh")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model, data, {"optimizer": "sgd", "optimizer_kwargs": {"lr": 0.1}, "epochs": 15}


def _overfitting(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    n = min(kw["n"], 300)
    data = _data(kw, n=n, label_noise=0.2) if kw["task"] != "regression" else _data(kw, n=n)
    if not data.classes:  # noisy regression targets
        g = torch.Generator().manual_seed(kw["seed"])
        data.y = data.y + 0.5 * torch.randn(data.y.shape, generator=g)
    model = mlp(data.x.shape[1], [max(kw["width"], 64) * 2] * 2, data.out_features, "relu")
    return model, data, {
        "optimizer": "adam", "optimizer_kwargs": {"lr": 2e-3}, "epochs": 40, "batch_size": 32,
    }  # fmt: skip


def _shuffled_labels(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw, n=min(kw["n"], 512))
    g = torch.Generator().manual_seed(kw["seed"])
    data.y = data.y[torch.randperm(len(data.y), generator=g)]  # validation keeps the true ones
    model = mlp(data.x.shape[1], [max(kw["width"], 64) * 2] * 2, data.out_features, "relu")
    return model, data, {
        "optimizer": "adam", "optimizer_kwargs": {"lr": 1e-3}, "epochs": 30, "batch_size": 32,
    }  # fmt: skip


def _model_bias(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw, shells=True)
    model = nn.Linear(data.x.shape[1], data.out_features)
    return model, data, {"optimizer": "sgd", "optimizer_kwargs": {"lr": 0.1}, "epochs": 15}


def _dead_units(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = mlp(data.x.shape[1], [kw["width"]] * 2, data.out_features, "relu")
    with torch.no_grad():
        for m in list(model.modules())[1:-1]:
            if isinstance(m, nn.Linear):
                m.bias.fill_(-4.0 * float(m.weight.std()) * math.sqrt(m.in_features))
    return model, data, {"optimizer": "sgd", "optimizer_kwargs": {"lr": 0.05}, "epochs": 15}


def _ill_conditioned(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    d = data.x.shape[1]
    g = torch.Generator().manual_seed(20_000 + kw["seed"])
    scales = 10.0 ** torch.linspace(-2, 2, d)[torch.randperm(d, generator=g)]
    data.x, data.x_val = data.x * scales, data.x_val * scales
    model = mlp(d, [kw["width"]] * 2, data.out_features, "relu")
    # the largest lr the largest feature allows: lr · λ_max ≈ 1 for λ_max ~ scale_max²
    return model, data, {"optimizer": "sgd", "optimizer_kwargs": {"lr": 2e-3}, "epochs": 15}


def _exploding(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = _mlp_init(mlp(data.x.shape[1], [kw["width"]] * 10, data.out_features, "relu"), he=4.0)
    return model, data, {"optimizer": "sgd", "optimizer_kwargs": {"lr": 0.01}, "epochs": 10}


def _healthy(**kw: Any) -> tuple[nn.Module, Data, dict[str, Any]]:
    data = _data(kw)
    model = mlp(data.x.shape[1], [kw["width"]] * 2, data.out_features, "relu")
    if kw.get("optimizer") == "sgd":  # momentum SGD at a good rate
        opt = {"optimizer": "sgd", "optimizer_kwargs": {"lr": 0.02, "momentum": 0.9}}
    else:
        opt = {"optimizer": "adam", "optimizer_kwargs": {"lr": 1e-3}}
    return model, data, {**opt, "epochs": 10}


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("lr_too_high", "lr_too_high", "SGD with a learning rate far too high", _lr_too_high),
        Case("lr_too_low", "lr_too_low", "SGD with a learning rate far too low", _lr_too_low),
        Case(
            "vanishing",
            "vanishing_gradients",
            "an 8-layer sigmoid MLP with N(0, 0.01²) weights",
            _vanishing,
        ),
        Case("saddle", "saddle_point", "the zero-weight tanh MLP (an exact saddle)", _saddle),
        Case(
            "overfitting",
            "overfitting",
            "a big MLP on 300 noisy rows for many epochs",
            _overfitting,
        ),
        Case(
            "shuffled_labels",
            "overfitting",
            "a big MLP on training labels shuffled away from their inputs",
            _shuffled_labels,
        ),
        Case("model_bias", "model_bias", "a linear model on a nonlinear problem", _model_bias),
        Case("dead_units", "dead_units", "a ReLU MLP with its units driven dead", _dead_units),
        Case(
            "ill_conditioned",
            "ill_conditioned",
            "input features scaled from 0.01 to 100",
            _ill_conditioned,
        ),
        Case(
            "exploding",
            "exploding_gradients",
            "a 10-layer ReLU MLP with a huge initialisation",
            _exploding,
        ),
        Case("healthy", "healthy", "a healthy run", _healthy),
    ]  # fmt: skip
}


def run_case(
    name: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    width: int = 64,
    n: int = 1024,
    dim: int = 16,
    task: str = "classification",
    batch_size: int = 64,
    optimizer: str | None = None,
    **doctor: Any,
) -> Path:
    """Train test-bed case ``name`` into ``out_dir`` with the doctor watching.

    Args:
        name: a key of :data:`CASES`.
        out_dir: the run folder (records, config, history).
        seed: seeds the data, the initialisation and the shuffling.
        width: hidden width.
        n: training rows (the overfitting case uses at most 300).
        dim: input dimensions.
        task: ``classification`` (4 classes) or ``regression``.
        batch_size: rows per step (unless the case sets its own).
        optimizer: ``sgd`` or ``adam`` for the learning-rate cases and the healthy run (each
            at its own far-off or good rate); the other cases keep theirs.
        **doctor: settings of the doctor's :class:`~trainlab.doctor.monitor.Monitor`.

    Returns:
        ``out_dir``.
    """
    from trainlab.doctor.callback import DoctorCallback
    from trainlab.train import TrainConfig, fit

    if name not in CASES:
        raise KeyError(f"unknown test-bed case {name!r}; choose one of {', '.join(CASES)}")
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be classification or regression, got {task!r}")
    torch.manual_seed(seed)
    model, data, train_kw = CASES[name].build(
        seed=seed, width=width, n=n, dim=dim, task=task, optimizer=optimizer
    )
    train_kw = {"batch_size": batch_size, **train_kw}
    cfg = TrainConfig(
        seed=seed, device="cpu", quiet=True, out_dir=None, checkpoint=False, restore_best=False,
        **train_kw,
    )  # fmt: skip
    out = Path(out_dir)
    callback = DoctorCallback(out, description=f"test bed: {CASES[name].what}", **doctor)
    try:
        fit(model, data.loss_fn(), (data.x, data.y), (data.x_val, data.y_val), cfg,
            callbacks=[callback])  # fmt: skip
    except TrainingDiverged:
        pass  # the run stops there, as a real one would; its records say why
    return out
