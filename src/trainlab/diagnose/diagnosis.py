"""Diagnose a saved model: load it through its task, classify the point, optionally escape.

This is what ``trainlab diagnose --model OUT`` runs. A model folder written by any task
(``OUT/model/model.json`` with ``{"task": ...}`` beside ``model.pt``) is turned into a
:class:`~trainlab.diagnose.target.DiagnosisTarget` by ``trainlab.tasks.<task>.load_for_diagnosis``;
:func:`diagnose` then runs :func:`~trainlab.diagnose.classify.classify` (exact spectrum for small
models, Lanczos and SLQ for large ones) and, if asked, :func:`~trainlab.diagnose.escape.escape`.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from trainlab.config import to_dict
from trainlab.diagnose.classify import CriticalPointReport, classify
from trainlab.diagnose.escape import EscapeResult, escape
from trainlab.diagnose.hvp import ModelObjective
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import DataError, TrainlabError

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
    obj = ModelObjective(
        target.model, target.loss_fn, target.inputs, target.targets,
        params=cfg.params, mode=cfg.mode, dtype=DTYPES[cfg.dtype], seed=cfg.seed,
        weight_decay=cfg.weight_decay,
    )  # fmt: skip
    report = classify(
        obj, k=cfg.k, exact_max_params=cfg.exact_max_params, grad_tol=cfg.grad_tol,
        eig_rtol=cfg.eig_rtol, eig_atol=cfg.eig_atol, lanczos_tol=cfg.lanczos_tol,
        slq_vectors=cfg.slq_vectors, slq_steps=cfg.slq_steps, seed=cfg.seed,
    )  # fmt: skip
    esc = escape(obj, report=report) if cfg.escape else None
    return Diagnosis(target.description, cfg, report, esc, obj.names, time.perf_counter() - t0)


_TASK_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def find_model_json(model_out: str | Path) -> Path:
    """``OUT/model/model.json`` or ``OUT/model.json`` (or the file itself), else a DataError."""
    path = Path(model_out)
    if path.is_file() and path.name == "model.json":
        return path
    for candidate in (path / "model" / "model.json", path / "model.json"):
        if candidate.is_file():
            return candidate
    what = "does not exist" if not path.exists() else "holds no model/model.json or model.json"
    raise DataError(
        path,
        f"{what}; point --model at the output folder of `trainlab covid train` or "
        "`trainlab phoneme train`",
    )


def read_model_json(path: Path) -> dict[str, Any]:
    """The saved model's description, checked to name a task."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"corrupt model description (not valid JSON: {e})") from None
    if not isinstance(meta, dict) or "task" not in meta:
        raise DataError(path, "the model description has no 'task' entry")
    task = meta["task"]
    if not isinstance(task, str) or not _TASK_NAME.fullmatch(task):
        raise DataError(path, f"invalid task name {task!r}")
    return meta


def known_tasks() -> list[str]:
    """The task modules under ``trainlab.tasks`` that can load a model for diagnosis."""
    import trainlab.tasks

    return sorted(
        m.name for m in pkgutil.iter_modules(trainlab.tasks.__path__) if not m.name.startswith("_")
    )


def _check_checkpoint(model_dir: Path) -> None:
    ckpt = model_dir / "model.pt"
    if not ckpt.is_file():
        raise DataError(ckpt, "missing: the model folder has no weights")
    try:
        torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise DataError(
            ckpt, f"corrupt checkpoint ({type(e).__name__}: {e})".splitlines()[0]
        ) from None


def load_target(
    model_out: str | Path, data: str | None = None, batch: int = 1024, seed: int = 0
) -> tuple[DiagnosisTarget, dict[str, Any]]:
    """Rebuild a saved model and one batch of its data through its task's loader.

    Args:
        model_out: the training output folder (or its ``model`` folder).
        data: the data path; ``None`` uses the one the model was trained on.
        batch: the batch size to analyse.
        seed: which batch (the loaders draw it with this seed).

    Returns:
        ``(target, model.json contents)``.
    """
    if batch < 1:
        raise TrainlabError(f"batch must be at least 1, got {batch}")
    json_path = find_model_json(model_out)
    meta = read_model_json(json_path)
    model_dir = json_path.parent
    _check_checkpoint(model_dir)
    task = meta["task"]
    modname = f"trainlab.tasks.{task}"
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name != modname:
            raise
        raise TrainlabError(
            f"{json_path}: unknown task {task!r}; known tasks: {', '.join(known_tasks()) or '(none)'}"
        ) from None
    loader = getattr(module, "load_for_diagnosis", None)
    if loader is None:
        raise TrainlabError(
            f"task {task!r} cannot load a model for diagnosis (no load_for_diagnosis)"
        )
    target = loader(model_dir, data, batch, seed)
    if not all(hasattr(target, a) for a in ("model", "loss_fn", "inputs", "targets")):
        raise TrainlabError(f"task {task!r}: load_for_diagnosis did not return a DiagnosisTarget")
    return target, meta
