"""The Trainer: one model-agnostic loop that every task and experiment uses, and its callbacks."""

from trainlab.train.batches import ArrayBatches, FreshBatches, as_batches
from trainlab.train.callbacks import Callback, CallbackList, TrainState
from trainlab.train.checkpoint import Checkpoints, load_checkpoint, save_checkpoint
from trainlab.train.config import TrainConfig
from trainlab.train.early_stopping import EarlyStopping
from trainlab.train.evaluation import evaluate, predict
from trainlab.train.history import History, plot_curves
from trainlab.train.metrics import accuracy, mse, rmse
from trainlab.train.progress import Progress
from trainlab.train.run_files import RunFiles
from trainlab.train.trainer import default_callbacks, fit

__all__ = [
    "ArrayBatches",
    "Callback",
    "CallbackList",
    "Checkpoints",
    "EarlyStopping",
    "FreshBatches",
    "History",
    "Progress",
    "RunFiles",
    "TrainConfig",
    "TrainState",
    "accuracy",
    "as_batches",
    "default_callbacks",
    "evaluate",
    "fit",
    "load_checkpoint",
    "mse",
    "plot_curves",
    "predict",
    "rmse",
    "save_checkpoint",
]
