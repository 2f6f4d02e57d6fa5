"""The report's sections, one module per claim of the chapter, in the chapter's order.

Each module exposes ``KEY``, ``TITLE``, ``CLAIM``, a settings dataclass ``Config``,
``default_config(quick) -> Config`` and two steps:

* ``measure(ctx, cfg)`` runs the experiment and returns plain data: a dataclass of numbers with a
  ``numbers()`` method giving its ``results.json`` form (:class:`~trainlab.report.result.Measurement`).
  It draws nothing, so every number is testable without matplotlib;
* ``render(ctx, cfg, measured) -> Rendered`` turns that data into prose, tables, figures and the
  verdict (:class:`~trainlab.report.result.Rendered`).

The runner fills in what every section shares (number, key, title, claim, settings, timing).
Modules are imported only when their section runs, so a section whose dependencies are missing
does not stop the others.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["SECTIONS", "load_section"]

# number -> (key, title); the key names the module and the section's table in config.json
SECTIONS: dict[int, tuple[str, str]] = {
    1: ("overfitting", "The training framework and overfitting"),
    2: ("init", "Initialisation"),
    3: ("critical", "Critical points: local minima and saddle points"),
    4: ("batch_size", "Batch size"),
    5: ("momentum", "Momentum"),
    6: ("adaptive", "Adaptive learning rates and warm-up"),
    7: ("batchnorm", "Batch normalisation"),
    8: ("doctor", "The doctor: the chapter's diagnosis, automated"),
}


def load_section(number: int) -> ModuleType:
    """Import the module of section ``number``."""
    key, _ = SECTIONS[number]
    return importlib.import_module(f"trainlab.report.sections.{key}")
