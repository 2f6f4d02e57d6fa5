"""Critical-point diagnostics: is training stuck at a saddle point or at a local minimum?

When the loss stops falling the gradient is near zero both at a local minimum and at a saddle
point; the lecture's answer is the Hessian. Point the tools at any model, loss and batch:

>>> obj = ModelObjective(model, loss_fn, inputs, targets)       # doctest: +SKIP
>>> report = classify(obj); print(report)                          # doctest: +SKIP
>>> print(escape(obj, report=report))                              # doctest: +SKIP

* :mod:`~trainlab.diagnose.hvp` - Hessian-vector products (all parameters or a prefix subset;
  evaluation or training mode), the exact Hessian.
* :mod:`~trainlab.diagnose.lanczos` - extreme eigenvalues by Lanczos; power iteration (PyHessian).
* :mod:`~trainlab.diagnose.spectrum` - full spectrum, Hutchinson trace, SLQ density.
* :mod:`~trainlab.diagnose.classify` - gradient norm, extreme eigenvalues, minimum ratio, verdict.
* :mod:`~trainlab.diagnose.escape` - step along the most negative curvature; actual vs predicted.
* :mod:`~trainlab.diagnose.study` - the lecture's minimum-ratio-against-loss experiment.
* :mod:`~trainlab.diagnose.diagnosis` - model, loss and batch -> report (``trainlab diagnose``).
"""

from trainlab.diagnose.classify import (
    CriticalPointReport,
    Verdict,
    classify,
    eigenvalue_tolerance,
    verdict_for,
)
from trainlab.diagnose.diagnosis import (
    DiagnoseConfig,
    Diagnosis,
    diagnose,
)
from trainlab.diagnose.escape import EscapeResult, escape
from trainlab.diagnose.hvp import (
    FunctionObjective,
    ModelObjective,
    Objective,
    as_objective,
    hessian_vector_product,
    select_parameters,
)
from trainlab.diagnose.lanczos import (
    Eigenpairs,
    extreme_eigenpairs,
    hessian_operator,
    lanczos_tridiagonal,
    power_iteration_topk,
)
from trainlab.diagnose.spectrum import (
    SpectralDensity,
    Spectrum,
    TraceEstimate,
    full_spectrum,
    hutchinson_trace,
    slq_density,
)
from trainlab.diagnose.study import (
    StudyConfig,
    StudyPoint,
    StudyResult,
    critical_point_study,
    plot_study,
    study_data,
)
from trainlab.diagnose.target import DiagnosisTarget

__all__ = [
    "CriticalPointReport",
    "DiagnoseConfig",
    "Diagnosis",
    "DiagnosisTarget",
    "Eigenpairs",
    "EscapeResult",
    "FunctionObjective",
    "ModelObjective",
    "Objective",
    "SpectralDensity",
    "Spectrum",
    "StudyConfig",
    "StudyPoint",
    "StudyResult",
    "TraceEstimate",
    "Verdict",
    "as_objective",
    "classify",
    "critical_point_study",
    "diagnose",
    "eigenvalue_tolerance",
    "escape",
    "extreme_eigenpairs",
    "full_spectrum",
    "hessian_operator",
    "hessian_vector_product",
    "hutchinson_trace",
    "lanczos_tridiagonal",
    "plot_study",
    "power_iteration_topk",
    "select_parameters",
    "slq_density",
    "study_data",
    "verdict_for",
]
