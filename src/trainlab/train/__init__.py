"""The Trainer: one model-agnostic loop that every task and experiment uses."""

from trainlab.train.batches import ArrayBatches, as_batches
from trainlab.train.callbacks import Callback, EarlyStopping, TrainState
from trainlab.train.checkpoint import load_checkpoint, save_checkpoint
from trainlab.train.config import TrainConfig
from trainlab.train.history import History, plot_curves
from trainlab.train.metrics import accuracy, mse, rmse
from trainlab.train.trainer import evaluate, fit, predict

__all__ = [
    "ArrayBatches",
    "Callback",
    "EarlyStopping",
    "History",
    "TrainConfig",
    "TrainState",
    "accuracy",
    "as_batches",
    "evaluate",
    "fit",
    "load_checkpoint",
    "mse",
    "plot_curves",
    "predict",
    "rmse",
    "save_checkpoint",
]
