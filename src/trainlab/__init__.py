"""trainlab: a PyTorch workbench for the question "my network stopped improving - why, and what do I do?".

It implements the training techniques of a well-known lecture chapter from scratch (initialisation,
batch normalisation, momentum, adaptive learning rates, schedules, overfitting remedies), checks them
against PyTorch, diagnoses critical points from the Hessian, measures the chapter's claims, and solves
its two Kaggle competitions (COVID-19 cases regression, framewise phoneme classification).
"""

from trainlab.errors import TrainlabError

__version__ = "0.1.0"

__all__ = ["TrainlabError", "__version__"]
