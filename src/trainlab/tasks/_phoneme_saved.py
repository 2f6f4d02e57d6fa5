"""Saving and rebuilding phoneme models: ``model/`` holds the weights, the settings and the HMM.

``model.pt`` is a state dict (loaded with ``weights_only=True``), ``model.json`` the resolved
:class:`PhonemeConfig` plus what ``trainlab diagnose`` needs (``task``, ``data``), and
``transitions.npy`` / ``prior.npy`` the phone-transition matrix and class prior for Viterbi decoding.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_torch_save, atomic_write_json, atomic_write_with
from trainlab.config import from_dict, to_dict
from trainlab.data.timit import NUM_CLASSES, PHONES, ROW_DIM
from trainlab.errors import DataError
from trainlab.tasks._phoneme_config import PhonemeConfig
from trainlab.tasks._phoneme_infer import Smoothing
from trainlab.tasks._phoneme_models import FrameMLP, SequenceRNN

MODEL_FILE, INFO_FILE = "model.pt", "model.json"
TRANSITIONS_FILE, PRIOR_FILE = "transitions.npy", "prior.npy"


def build_model(config: PhonemeConfig) -> torch.nn.Module:
    """The network ``config`` describes (a :class:`FrameMLP` or a :class:`SequenceRNN`)."""
    if config.sequence:
        return SequenceRNN(
            in_features=39 * config.rnn_frames,
            hidden_size=config.rnn_hidden,
            num_layers=config.rnn_layers,
            cell=config.rnn_cell,
            dropout=config.dropout,
            proj_size=config.rnn_proj,
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
    """Write ``model.pt`` (state dict), ``model.json``, ``transitions.npy`` and ``prior.npy``."""
    folder = Path(folder)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_torch_save(state, folder / MODEL_FILE)
    atomic_write_with(folder / TRANSITIONS_FILE, lambda p: np.save(p, transitions))
    atomic_write_with(folder / PRIOR_FILE, lambda p: np.save(p, prior))
    info = {
        "task": "phoneme",
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
    """Rebuild a saved model (``OUT`` or ``OUT/model``) on the CPU in eval mode.

    Returns:
        ``(net, info)``; ``info`` is ``model.json`` with ``config`` as a :class:`PhonemeConfig`,
        ``log_transitions``/``log_prior`` arrays and ``smoothing`` as a :class:`Smoothing`.

    Raises:
        TrainlabError: no model there, a foreign task, or files that do not load.
    """
    folder = Path(path)
    if not (folder / INFO_FILE).is_file() and (folder / "model" / INFO_FILE).is_file():
        folder = folder / "model"
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise DataError(path, f"no saved model here ({INFO_FILE} not found)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(info_path, f"not valid JSON ({e})") from None
    if info.get("task") != "phoneme":
        raise DataError(info_path, f"a model of task {info.get('task')!r}, not 'phoneme'")
    cfg = from_dict(PhonemeConfig, info.get("config", {}), source=str(info_path))
    net = build_model(cfg)
    try:
        state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
        transitions = np.load(
            folder / info.get("transitions", TRANSITIONS_FILE), allow_pickle=False
        )
        prior = np.load(folder / info.get("prior", PRIOR_FILE), allow_pickle=False)
    except FileNotFoundError as e:
        raise DataError(e.filename, "missing file of the saved model") from None
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError):
        raise DataError(
            folder, f"the saved model does not load: {MODEL_FILE} or the .npy files are corrupt"
        ) from None
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
