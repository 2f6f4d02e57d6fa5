"""The doctor: watch any training run, then say which of the chapter's causes holds and what to try.

The lecture's decision framework, automated. A :class:`Monitor` attaches to any ``nn.Module`` and
optimizer (three lines in a plain PyTorch loop; :class:`DoctorCallback` for trainlab's ``fit``,
which attaches it by itself; :class:`~trainlab.doctor.lightning.DoctorLightning` for PyTorch
Lightning) and writes ``RUN_DIR/doctor.jsonl`` (:mod:`~trainlab.doctor.records`). Then
``trainlab doctor RUN_DIR`` (or :func:`examine`) reads it and writes ``doctor.json`` and
``doctor.html`` (:mod:`~trainlab.doctor.report`).

What is watched:

* every few steps (time-budgeted, about 3% of training time in all): the loss, the gradient norm
  overall and per layer, the weights' norms, the update-to-weight ratio per layer, the learning
  rate, non-finite values (the run stops with a clear message);
* on a fixed probe batch (:mod:`~trainlab.doctor.probes`): per-layer activation mean and std,
  dead ReLU-family units, saturated sigmoid/tanh units, the input features' scales and the loss
  of the best constant output;
* rarely, with a bounded number of Hessian-vector products (:mod:`~trainlab.doctor.curvature`):
  the top Hessian eigenvalue against the optimizer's stability threshold (2/lr for SGD: the edge
  of stability), the bottom one when the gradient is small (saddle or minimum), and the gradient
  noise scale ``B_simple = tr(Σ)/|G|²`` against the batch size.

The causes (:mod:`~trainlab.doctor.rules`; "reference" is the loss of the best constant output
on the probe batch, else the first loss; ρ is the stability ratio, 1 at the edge of stability):

=======================  ======================================================================
cause                    rule (thresholds in ``rules.THRESHOLDS``)
=======================  ======================================================================
``ill_conditioned``      input feature RMS spread ≥ 100 (max/median), or |mean|/std ≥ 30, or
                         median RMS beyond 30 (or 1/30); a problem unless the loss got below 0.1
                         of the reference
``exploding_gradients``  at the first probe the last weight layer's output std ≥ 100x the input
                         RMS, or first/last layer gradient ratio ≥ 1000; a problem if the run
                         diverged or its loss stayed high
``vanishing_gradients``  first/last weight layer gradient ratio ≤ 1e-3 at the start (all
                         non-zero, ≥ 3 weight layers), or ≥ 50% saturated sigmoid/tanh values;
                         a problem when the loss is high (≥ 0.75 of the reference)
``lr_too_high``          non-finite loss or gradient; a later loss ≥ 3x the first; ρ ≥ 10 at
                         the start (SGD/momentum); ρ ≥ 2 with the loss ≥ 0.4 of the reference;
                         adaptive optimizers: update/weight ≥ 0.1 per step; regression
                         targets with RMS beyond 30 (or 1/30) or |mean|/std ≥ 30 are named
                         beside it, standardising them the first remedy
``dead_units``           ≥ 50% of ReLU-family units (or ≥ 90% of one layer's) never active on
                         the probe batch; a problem when the loss is high; ≥ 25%: a warning
``lr_too_low``           update/weight < 1e-4 per step (median layer, 75th percentile), or SGD
                         ρ < 2e-3 throughout; with a loss ≥ 0.4 of the reference or still
                         falling
``saddle_point``         loss high and stalled (< 2% fall over the second half) and at the end
                         λ_min ≤ -0.1 λ_max: negative curvature gradient descent does not use
``local_minimum``        loss high and stalled, no such negative curvature, a non-linear model
                         with ≥ 2 parameters per training example (it could fit them)
``model_bias``           loss high and stalled without negative curvature, in a linear or small
                         model; a warning when it still falls, or when the stalled loss is only
                         0.4-0.75 of the reference (or noise); settled by a bigger model; not
                         while validation rises as training falls, nor while the loss still
                         falls ≥ 10% over the second half; also a warning when dropout holds
                         the model back (training loss ≥ 0.4 of the reference with dropout on,
                         validation ≤ 0.8x it with dropout off but ≥ 0.4 of the reference)
``overfitting``          validation loss ≥ 10% above its best and ≥ 2x the training loss, the
                         training loss not high; a gap without the rise is a warning; or,
                         however high the training loss, validation ≥ 10% above its best while
                         training still falls (≥ 2% over the second half): noisy labels
``batch_size``           information: the batch against ``B_simple`` (remarked beyond 4x)
``healthy``              no rule found a problem (told to train longer while the loss still
                         falls ≥ 10% over the second half)
=======================  ======================================================================

Findings are ordered problems first, then warnings, then information, and within a severity
in the order of the table (the chapter's causal chain: see :mod:`~trainlab.doctor.rules`). A
finding that an earlier problem explains is left out: no ``lr_too_low`` beside ``lr_too_high``,
``vanishing_gradients`` or ``dead_units``; no saddle point or local minimum beside a problem of the
rows above them; no ``model_bias`` beside any optimisation problem. The doctor never changes
the training it watches: a run with and without it gives the same weights.

:mod:`~trainlab.doctor.testbed` holds deliberately broken trainings with known causes.
"""

from __future__ import annotations

from typing import Any

from trainlab.doctor.callback import DoctorCallback
from trainlab.doctor.monitor import Monitor
from trainlab.doctor.records import RECORDS_FILE, Records, read_records
from trainlab.doctor.report import DoctorReport, examine
from trainlab.doctor.rules import CAUSES, THRESHOLDS, Finding, find_causes

__all__ = [
    "CAUSES",
    "RECORDS_FILE",
    "THRESHOLDS",
    "DoctorCallback",
    "DoctorLightning",
    "DoctorReport",
    "Finding",
    "Monitor",
    "Records",
    "examine",
    "find_causes",
    "read_records",
]


def __getattr__(name: str) -> Any:
    if name == "DoctorLightning":  # lightning is an optional extra: imported only when asked for
        from trainlab.doctor.lightning import DoctorLightning

        return DoctorLightning
    raise AttributeError(f"module 'trainlab.doctor' has no attribute {name!r}")
