"""Data: the two competitions' file formats, the phoneme featurizer, MNIST IDX files, downloads.

Names are imported on first use, so ``import trainlab.data.mnist`` does not load pandas or the
audio stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "trainlab.data.covid": [
        "FEATURE_SETS",
        "FOLD_SCHEMES",
        "LAYOUTS",
        "CovidFrame",
        "CovidLayout",
        "Fold",
        "Standardizer",
        "load_covid_dir",
        "make_folds",
        "read_covid",
        "select_features",
        "time_order",
        "HistorySpec",
        "SeriesTails",
        "Timeline",
        "build_timeline",
        "chain_rows",
        "history_features",
        "with_history",
    ],
    "trainlab.data.timit": [
        "PHONES",
        "TimitData",
        "Utterances",
        "load_timit",
        "load_features",
        "load_labels",
        "load_utterances",
        "recover_utterances",
        "split_by_utterance",
    ],
    "trainlab.data.featurize": ["FeaturizeConfig", "FeaturizeReport", "featurize", "mfcc"],
    "trainlab.data.alignments": [
        "Alignment",
        "fold_phone",
        "read_alignment",
        "read_phn",
        "read_textgrid_phones",
    ],
    "trainlab.data.mnist": ["available_splits", "find_idx_files", "load_mnist", "read_idx"],
    "trainlab.data.kaggle": ["Competition", "download", "find_credentials"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'trainlab.data' has no attribute {name!r}")
