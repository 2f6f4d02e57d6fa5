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
from trainlab.phoneme.smoothing import Smoothing
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
    cfg = from_dict(PhonemeConfig, info.get("config", {}), source=str(folder / INFO_FILE))
    net = build_model(cfg)
    state = load_torch(folder / MODEL_FILE, "model weights file")
    transitions = _load_npy(folder / info.get("transitions", TRANSITIONS_FILE))
    prior = _load_npy(folder / info.get("prior", PRIOR_FILE))
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise DataError(
            folder / MODEL_FILE,
            f"the weights do not fit the architecture in {INFO_FILE}: {str(e).splitlines()[0]}",
        ) from None
    if transitions.shape != (NUM_CLASSES, NUM_CLASSES) or prior.shape != (NUM_CLASSES,):
        raise DataError(folder, "transitions.npy/prior.npy have the wrong shape")
    net.eval()
    info["config"] = cfg
    info["log_transitions"] = np.log(transitions)
    info["log_prior"] = np.log(prior)
    info["smoothing"] = Smoothing(**info.get("smoothing", {}))
    return net, info


def _load_npy(path: Path) -> np.ndarray:
    """One array of the saved model, every failure as a DataError naming the file."""
    if not path.is_file():
        raise DataError(path, "missing file of the saved model")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise DataError(path, "the saved model's array does not load (corrupt file?)") from None
