"""The chapter's two competitions, end to end: ``covid`` (regression) and ``phoneme`` (framewise
classification). Each task module trains, predicts, writes Kaggle submissions and exposes
``load_for_diagnosis`` for ``trainlab diagnose``.

Names are imported on first use, so importing one task does not load the other.
"""

from __future__ import annotations

import importlib
from typing import Any

TASKS = ("covid", "phoneme")

_EXPORTS = {
    "trainlab.tasks.covid": ["CovidConfig", "predict_covid", "train_covid", "load_ensemble"],
    "trainlab.tasks.phoneme": ["PhonemeConfig", "predict_phoneme", "train_phoneme", "load_model"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_WHERE, "TASKS"])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'trainlab.tasks' has no attribute {name!r}")
