"""COVID-19 cases prediction (Kaggle ml2021spring-hw1): files to submission in one package.

Read from the top down, the modules follow ``trainlab covid train`` from the command line to the
network:

* :mod:`~trainlab.covid.run` - train, predict, evaluate; :func:`load_for_diagnosis`.
* :mod:`~trainlab.covid.report` - the validation table, ``metrics.json`` content, figures.
* :mod:`~trainlab.covid.ensemble` - the final ensemble, the later-days simulation, save and load.
* :mod:`~trainlab.covid.validate` - cross-validation of the model and the references.
* :mod:`~trainlab.covid.members` - one trained network (or ridge) per tier and seed.
* :mod:`~trainlab.covid.model` - the MLP and its penalised loss.
* :mod:`~trainlab.covid.config` - typed settings and the named presets.
* :mod:`~trainlab.covid.folds` - blocked, random and course splits; the later-days split.
* :mod:`~trainlab.covid.series` - chaining the windows into daily series; history features.
* :mod:`~trainlab.covid.frame` - feature sets, scaling on the training rows, row subsets.
* :mod:`~trainlab.covid.files` - the two file layouts and the strict reader.
"""

from trainlab.covid.config import (
    DEFAULT_PRESET,
    PRESETS,
    CovidConfig,
    HistoryConfig,
    ModelConfig,
    load_covid_config,
    preset,
)
from trainlab.covid.ensemble import Ensemble, fit_ensemble, load_ensemble, save_ensemble
from trainlab.covid.files import (
    LAYOUTS,
    TARGET_FEATURE,
    TEST_FILE,
    TRAIN_FILE,
    CovidFrame,
    CovidLayout,
    load_covid_dir,
    read_covid,
)
from trainlab.covid.folds import FOLD_SCHEMES, Fold, holdout_split, make_folds
from trainlab.covid.frame import FEATURE_SETS, Standardizer, select_features, subset
from trainlab.covid.model import LOSSES, CovidMLP, make_loss
from trainlab.covid.run import (
    CovidRun,
    evaluate_covid,
    load_for_diagnosis,
    predict_covid,
    predict_covid_info,
    submission_csv,
    train_covid,
)
from trainlab.covid.series import (
    HistorySpec,
    SeriesTails,
    Timeline,
    build_timeline,
    chain_rows,
    history_features,
    time_order,
    with_history,
)
from trainlab.covid.validate import REFERENCES, SchemeResult, cross_validate

__all__ = [
    "DEFAULT_PRESET",
    "FEATURE_SETS",
    "FOLD_SCHEMES",
    "LAYOUTS",
    "LOSSES",
    "PRESETS",
    "REFERENCES",
    "TARGET_FEATURE",
    "TEST_FILE",
    "TRAIN_FILE",
    "CovidConfig",
    "CovidFrame",
    "CovidLayout",
    "CovidMLP",
    "CovidRun",
    "Ensemble",
    "Fold",
    "HistoryConfig",
    "HistorySpec",
    "ModelConfig",
    "SchemeResult",
    "SeriesTails",
    "Standardizer",
    "Timeline",
    "build_timeline",
    "chain_rows",
    "cross_validate",
    "evaluate_covid",
    "fit_ensemble",
    "history_features",
    "holdout_split",
    "load_covid_config",
    "load_covid_dir",
    "load_ensemble",
    "load_for_diagnosis",
    "make_folds",
    "make_loss",
    "predict_covid",
    "predict_covid_info",
    "preset",
    "read_covid",
    "save_ensemble",
    "select_features",
    "subset",
    "submission_csv",
    "time_order",
    "train_covid",
    "with_history",
]
