"""Diagnose a model at its trained weights: classify the point, optionally escape.

Under ``torchrun`` each rank analyses its shard of the batch and the products are combined across
ranks (:mod:`trainlab.diagnose.distributed`). This is what ``trainlab diagnose --model OUT`` runs
once the task registry
(:func:`trainlab.tasks.load_target`) has turned a saved model folder into a
:class:`~trainlab.diagnose.target.DiagnosisTarget`. :func:`diagnose` runs :func:`~trainlab.diagnose.classify.classify` (exact spectrum for small
models, Lanczos and SLQ for large ones) and, if asked, :func:`~trainlab.diagnose.escape.escape`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from trainlab.config import to_dict
from trainlab.diagnose.classify import CriticalPointReport, classify
from trainlab.diagnose.distributed import DistributedObjective, shard_target
from trainlab.diagnose.escape import EscapeResult, escape
from trainlab.diagnose.hvp import ModelObjective
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import TrainlabError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class DiagnoseConfig:
    """Settings of :func:`diagnose` (and of ``trainlab diagnose``)."""

    k: int = 5  # extreme eigenvalues reported at each end
    mode: str = "eval"  # "eval" | "train" (BatchNorm batch statistics, seeded dropout)
    params: str | None = None  # parameter-name prefix(es), comma-separated; None = all
    dtype: str = "float64"  # "float64" | "float32" for the Hessian-vector products
    weight_decay: float = 0.0  # analyse loss + ½ · weight_decay · ‖θ‖²
    exact_max_params: int = 5000  # exact spectrum up to this many parameters
    grad_tol: float = 1e-3
    eig_rtol: float = 1e-4
    eig_atol: float = 1e-8
    lanczos_tol: float = 1e-5
    slq_vectors: int = 2
    slq_steps: int = 80
    escape: bool = False
    seed: int = 0


@dataclass
class Diagnosis:
    """What :func:`diagnose` found: the report, the escape (if run), and what was analysed."""

    description: str
    config: DiagnoseConfig
    report: CriticalPointReport
    escape: EscapeResult | None
    parameter_names: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.description,
            "config": to_dict(self.config),
            "parameters": self.parameter_names,
            "diagnosis": self.report.to_dict(),
            "escape": None if self.escape is None else self.escape.to_dict(),
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        c = self.config
        which = "all parameters" if c.params is None else f"parameters {c.params}"
        lines = [
            f"model: {self.description}",
            f"analysed: {which}, {c.mode} mode, {c.dtype}"
            + (f", weight decay {c.weight_decay:g}" if c.weight_decay else ""),
            str(self.report),
        ]
        if self.escape is not None:
            lines.append(str(self.escape))
        return "\n".join(lines)

    def plot(self, path: str | Path) -> None:
        """Save the spectrum: a histogram (exact) or the SLQ density (large models)."""
        from trainlab.diagnose._plot import save_eigenvalue_plot

        if self.report.spectrum is not None:
            save_eigenvalue_plot(path, self.report.spectrum.eigenvalues, "Hessian eigenvalues")
        elif self.report.density is not None:
            self.report.density.plot(path)


def diagnose(
    target: DiagnosisTarget, config: DiagnoseConfig | None = None, **overrides: Any
) -> Diagnosis:
    """Classify the point a model sits at (and optionally escape along negative curvature).

    Args:
        target: the model, loss and batch (from a task's ``load_for_diagnosis``).
        config: the settings (default :class:`DiagnoseConfig`).
        **overrides: individual settings, e.g. ``mode="train"``, ``escape=True``.

    Returns:
        :class:`Diagnosis` (``print`` it; ``to_dict()`` for JSON).
    """
    cfg = replace(config or DiagnoseConfig(), **overrides)
    if cfg.dtype not in DTYPES:
        raise TrainlabError(f"dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    if cfg.mode not in ("eval", "train"):
        raise TrainlabError(f"mode must be 'eval' or 'train', got {cfg.mode!r}")
    if cfg.k < 1:
        raise TrainlabError(f"k must be at least 1, got {cfg.k}")
    t0 = time.perf_counter()
    obj = _objective(target, cfg)
    report = classify(
        obj, k=cfg.k, exact_max_params=cfg.exact_max_params, grad_tol=cfg.grad_tol,
        eig_rtol=cfg.eig_rtol, eig_atol=cfg.eig_atol, lanczos_tol=cfg.lanczos_tol,
        slq_vectors=cfg.slq_vectors, slq_steps=cfg.slq_steps, seed=cfg.seed,
    )  # fmt: skip
    esc = escape(obj, report=report) if cfg.escape else None
    return Diagnosis(target.description, cfg, report, esc, obj.names, time.perf_counter() - t0)


def _objective(target: DiagnosisTarget, cfg: DiagnoseConfig) -> ModelObjective:
    """The loss on the target's batch; under ``torchrun``, on this rank's shard, combined exactly
    across ranks (:class:`~trainlab.diagnose.distributed.DistributedObjective`)."""
    from trainlab.distributed import current

    ctx = current()
    rows = 0
    if ctx is not None:
        target, rows = shard_target(target, ctx.rank, ctx.world_size)
    obj = ModelObjective(
        target.model, target.loss_fn, target.inputs, target.targets,
        params=cfg.params, mode=cfg.mode, dtype=DTYPES[cfg.dtype], seed=cfg.seed,
        weight_decay=cfg.weight_decay,
    )  # fmt: skip
    if ctx is None:
        return obj
    return DistributedObjective(obj, rows)  # type: ignore[return-value]  # delegates the rest
