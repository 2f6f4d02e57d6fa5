"""Layers, initialisation and models of the chapter: from-scratch batch norm, Xavier/He init,
LeNet-5 with and without batch norm, the one MLP builder, a cheaper CPU dropout."""

from trainlab.nn.batchnorm import BatchNorm, BatchNorm1d, BatchNorm2d, batch_norm
from trainlab.nn.dropout import Dropout, dropout
from trainlab.nn.init import (
    INITIALIZERS,
    activation_variances,
    compute_fans,
    deep_mlp,
    he_normal_,
    he_uniform_,
    init_weights,
    list_initializers,
    normal_,
    xavier_normal_,
    xavier_uniform_,
)
from trainlab.nn.lenet import LeNet, describe, lenet
from trainlab.nn.mlp import ACTIVATIONS, activation, mlp

__all__ = [
    "ACTIVATIONS",
    "activation",
    "mlp",
    "INITIALIZERS",
    "LeNet",
    "describe",
    "lenet",
    "BatchNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "dropout",
    "activation_variances",
    "batch_norm",
    "compute_fans",
    "deep_mlp",
    "he_normal_",
    "he_uniform_",
    "init_weights",
    "list_initializers",
    "normal_",
    "xavier_normal_",
    "xavier_uniform_",
]
