"""Framewise phoneme classification (Kaggle ml2021spring-hw2): from audio to a submission.

The package reads downward from :mod:`~trainlab.phoneme.run` (train, predict, evaluate and
``load_for_diagnosis`` for ``trainlab diagnose``) through the settings (:mod:`.config`), the
networks (:mod:`.models`), batching (:mod:`.batches`), inference and smoothing (:mod:`.infer`,
:mod:`.smoothing`) and saved models (:mod:`.saved`) to the competition's files (:mod:`.files`)
and the featurizer that builds them from audio and phone alignments (:mod:`.featurize`,
:mod:`.alignments`).

Names are imported on first use, so ``trainlab.phoneme.featurize`` runs without loading PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.phoneme.alignments import (
        Alignment,
        fold_phone,
        read_alignment,
        read_phn,
        read_textgrid_phones,
    )
    from trainlab.phoneme.config import PRESETS, PhonemeConfig, preset, resolve_config
    from trainlab.phoneme.featurize import FeaturizeConfig, FeaturizeReport, mfcc
    from trainlab.phoneme.files import (
        NUM_CLASSES,
        PHONES,
        TimitData,
        Utterances,
        load_features,
        load_labels,
        load_timit,
        load_utterances,
        recover_utterances,
        split_by_utterance,
    )
    from trainlab.phoneme.models import FrameMLP, SequenceRNN, build_model
    from trainlab.phoneme.run import (
        evaluate_phoneme,
        load_for_diagnosis,
        predict_phoneme,
        train_phoneme,
    )
    from trainlab.phoneme.saved import load_model, save_model
    from trainlab.phoneme.smoothing import SMOOTHERS, Smoothing, apply_smoothing, viterbi_decode

_EXPORTS = {
    "trainlab.phoneme.files": [
        "NUM_CLASSES",
        "PHONES",
        "TimitData",
        "Utterances",
        "load_features",
        "load_labels",
        "load_timit",
        "load_utterances",
        "recover_utterances",
        "split_by_utterance",
    ],
    # the function ``featurize`` is not re-exported: the name is its module's
    "trainlab.phoneme.featurize": ["FeaturizeConfig", "FeaturizeReport", "mfcc"],
    "trainlab.phoneme.alignments": [
        "Alignment",
        "fold_phone",
        "read_alignment",
        "read_phn",
        "read_textgrid_phones",
    ],
    "trainlab.phoneme.config": ["PRESETS", "PhonemeConfig", "preset", "resolve_config"],
    "trainlab.phoneme.models": ["FrameMLP", "SequenceRNN", "build_model"],
    "trainlab.phoneme.smoothing": ["SMOOTHERS", "Smoothing", "apply_smoothing", "viterbi_decode"],
    "trainlab.phoneme.saved": ["load_model", "save_model"],
    "trainlab.phoneme.run": [
        "evaluate_phoneme",
        "load_for_diagnosis",
        "predict_phoneme",
        "train_phoneme",
    ],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = [
    "Alignment",
    "FeaturizeConfig",
    "FeaturizeReport",
    "FrameMLP",
    "NUM_CLASSES",
    "PHONES",
    "PRESETS",
    "PhonemeConfig",
    "SMOOTHERS",
    "SequenceRNN",
    "Smoothing",
    "TimitData",
    "Utterances",
    "apply_smoothing",
    "build_model",
    "evaluate_phoneme",
    "fold_phone",
    "load_features",
    "load_for_diagnosis",
    "load_labels",
    "load_model",
    "load_timit",
    "load_utterances",
    "mfcc",
    "predict_phoneme",
    "preset",
    "read_alignment",
    "read_phn",
    "read_textgrid_phones",
    "recover_utterances",
    "resolve_config",
    "save_model",
    "split_by_utterance",
    "train_phoneme",
    "viterbi_decode",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'trainlab.phoneme' has no attribute {name!r}")
