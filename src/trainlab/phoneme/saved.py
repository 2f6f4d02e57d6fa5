"""Saving and rebuilding phoneme models: ``model/`` holds the weights, the settings and the HMM.

``model.pt`` is a state dict (read by :func:`trainlab._io.load_torch`, tensors only),
``model.json`` the resolved :class:`PhonemeConfig` plus what ``trainlab diagnose`` needs
(``task``, ``data``), and ``transitions.npy`` / ``prior.npy`` the phone-transition matrix and
class prior for Viterbi decoding. The folder is found by :func:`trainlab.runs.find_model_dir`, so a
run folder, its ``model/`` or the ``model.json`` itself all work.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_torch_save, atomic_write_json, atomic_write_with, load_torch
from trainlab.config import from_dict, to_dict
from trainlab.errors import DataError
from trainlab.phoneme.config import PhonemeConfig
from trainlab.phoneme.files import NUM_CLASSES, PHONES, ROW_DIM
from trainlab.phoneme.models import build_model
from trainlab.phoneme.smoothing import SMOOTHERS, Smoothing
from trainlab.runs import MODEL_JSON, find_model_dir, read_model_json

TASK = "phoneme"
MODEL_FILE, INFO_FILE = "model.pt", MODEL_JSON
TRANSITIONS_FILE, PRIOR_FILE = "transitions.npy", "prior.npy"


def save_model(
    folder: str | Path,
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    data_root: Path | None,
    transitions: np.ndarray,
    prior: np.ndarray,
    smoothing: Smoothing,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write ``model.pt`` (state dict), ``model.json``, ``transitions.npy`` and ``prior.npy``.

    Args:
        folder: the model folder (created).
        net: the trained network (its weights are copied to the CPU).
        cfg: the run's settings.
        data_root: the training data folder, recorded for ``trainlab diagnose``.
        transitions: (C, C) phone-transition probabilities.
        prior: (C,) class prior.
        smoothing: the post-processor chosen on validation.
        metrics: the run's metrics (``val_accuracy`` is recorded).
    """
    folder = Path(folder)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_torch_save(state, folder / MODEL_FILE)
    atomic_write_with(folder / TRANSITIONS_FILE, lambda p: np.save(p, transitions))
    atomic_write_with(folder / PRIOR_FILE, lambda p: np.save(p, prior))
    info = {
        "task": TASK,
        "model": cfg.model,
        "config": to_dict(cfg),
        "data": None if data_root is None else str(Path(data_root).resolve()),
        "input_dim": ROW_DIM,
        "num_classes": NUM_CLASSES,
        "phones": list(PHONES),
        "smoothing": {k: v for k, v in asdict(smoothing).items() if k != "scores"},
        "transitions": TRANSITIONS_FILE,
        "prior": PRIOR_FILE,
        "val_accuracy": (metrics or {}).get("val_accuracy"),
    }
    atomic_write_json(folder / INFO_FILE, info)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a saved model (``OUT``, ``OUT/model`` or its ``model.json``) on the CPU in eval mode.

    Args:
        path: where the model is.

    Returns:
        ``(net, info)``; ``info`` is ``model.json`` with ``config`` as a :class:`PhonemeConfig`,
        ``log_transitions``/``log_prior`` arrays and ``smoothing`` as a :class:`Smoothing`.

    Raises:
        DataError: no model there, a foreign task, or files that do not load.
    """
    folder = find_model_dir(path, TASK)
    info = read_model_json(folder, TASK)
    source = folder / INFO_FILE
    cfg = from_dict(PhonemeConfig, _field(info, "config", dict, source), source=str(source))
    smoothing = from_dict(Smoothing, _field(info, "smoothing", dict, source), source=str(source))
    if smoothing.method not in SMOOTHERS:
        raise DataError(source, f"field 'smoothing': unknown method {smoothing.method!r}")
    names = {k: _field(info, k, str, source, default) for k, default in _TABLES.items()}
    net = build_model(cfg)
    state = load_torch(folder / MODEL_FILE, "model weights file")
    transitions = _load_npy(folder / _plain_name(names["transitions"], "transitions", source))
    prior = _load_npy(folder / _plain_name(names["prior"], "prior", source))
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise DataError(
            folder / MODEL_FILE,
            f"the weights do not fit the architecture in {INFO_FILE}: {str(e).splitlines()[0]}",
        ) from None
    for array, name, shape in ((transitions, names["transitions"], (NUM_CLASSES, NUM_CLASSES)),
                               (prior, names["prior"], (NUM_CLASSES,))):  # fmt: skip
        if array.shape != shape or array.dtype.kind != "f":
            raise DataError(
                folder / name, f"expected {shape} floats, got {array.shape} {array.dtype}"
            )
        if not (np.isfinite(array).all() and (array >= 0).all()):
            raise DataError(folder / name, "holds negative, NaN or infinite probabilities")
    net.eval()
    info["config"] = cfg
    with np.errstate(divide="ignore"):
        info["log_transitions"] = np.log(transitions)
        info["log_prior"] = np.log(prior)
    info["smoothing"] = smoothing
    return net, info


_TABLES = {"transitions": TRANSITIONS_FILE, "prior": PRIOR_FILE}


def _field(info: dict[str, Any], key: str, kind: type, source: Path, default: Any = None) -> Any:
    """``info[key]``, which must be a ``kind`` (absent: ``default``, or an error without one)."""
    if key not in info:
        if default is not None:
            return default
        raise DataError(source, f"the model description has no {key!r} field")
    value = info[key]
    if not isinstance(value, kind):
        raise DataError(
            source,
            f"field {key!r} must be a {_KIND_NAMES.get(kind, kind.__name__)}, "
            f"got {type(value).__name__} {value!r:.60}",
        )
    return value


_KIND_NAMES: dict[type, str] = {dict: "table (JSON object)", str: "file name (string)"}


def _plain_name(name: str, key: str, source: Path) -> str:
    if not name or Path(name).name != name or name in (".", ".."):
        raise DataError(source, f"field {key!r} must name a file beside it, got {name!r}")
    return name


def _load_npy(path: Path) -> np.ndarray:
    """One array of the saved model, every failure as a DataError naming the file."""
    if not path.is_file():
        raise DataError(path, "missing file of the saved model")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise DataError(path, "the saved model's array does not load (corrupt file?)") from None
