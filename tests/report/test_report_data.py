"""The report's data: the digits split, MNIST-format folders, LeNet's 28x28 view, bad specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.errors import DataError, TrainlabError
from trainlab.report.data import load_report_data, parse_data_spec, to_28x28


def test_digits_split_is_stratified_standardised_and_fixed():
    d = load_report_data("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_val.shape == (360, 1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    # standardised with the training set's statistics
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std()) - 1) < 1e-3
    # stratified: every class's validation share is within one image of 20 %
    tr = np.bincount(d.y_train.numpy(), minlength=10)
    va = np.bincount(d.y_val.numpy(), minlength=10)
    assert np.all(np.abs(va - 0.2 * (tr + va)) <= 1)
    again = load_report_data("digits")
    assert torch.equal(d.x_val, again.x_val) and torch.equal(d.y_train, again.y_train)
    s = d.summary()
    assert s["n_train"] == 1437 and s["n_val"] == 360 and sum(s["train_class_counts"]) == 1437


def test_flat_and_lenet_views():
    d = load_report_data("digits")
    (xf, yf), (xv, _) = d.flat()
    assert xf.shape == (1437, 64) and xv.shape == (360, 64) and torch.equal(yf, d.y_train)
    (xl, _), (xlv, _) = d.lenet()
    assert xl.shape == (1437, 1, 28, 28) and xlv.shape == (360, 1, 28, 28)
    # the 4-pixel frame holds the background value (what the digits' blank pixels map to)
    assert torch.allclose(xl[:, :, :4, :], d.x_train.amin().expand_as(xl[:, :, :4, :]))


def test_to_28x28_keeps_28x28_and_resizes_others():
    x = torch.randn(3, 1, 28, 28)
    assert to_28x28(x) is x
    assert to_28x28(torch.randn(2, 1, 16, 16)).shape == (2, 1, 28, 28)


def test_mnist_folder(mnist_folder):
    d = load_report_data(f"mnist:{mnist_folder}")
    assert d.x_train.shape == (160, 1, 28, 28) and d.x_val.shape == (40, 1, 28, 28)
    assert np.bincount(d.y_val.numpy()).tolist() == [4] * 10
    assert "MNIST-format" in d.description


def test_real_mnist_split_is_8000_2000(shared_data):
    folder = shared_data / "mnist"
    if not folder.is_dir():
        pytest.skip(f"MNIST test set not found at {folder}")
    d = load_report_data(f"mnist:{folder}")
    assert len(d.y_train) == 8000 and len(d.y_val) == 2000
    totals = np.array([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])  # SOURCE.md
    assert np.all(np.abs(np.bincount(d.y_val.numpy()) - 0.2 * totals) <= 1)


def test_bad_specs():
    assert parse_data_spec("digits") == ("digits", None)
    assert parse_data_spec("fashion:/x")[0] == "mnist"
    for bad in ("cifar", "mnist:", "mnist"):
        with pytest.raises(TrainlabError, match="unknown data"):
            parse_data_spec(bad)


def test_missing_mnist_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="MNIST folder not found"):
        load_report_data(f"mnist:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing t10k-images-idx3-ubyte"):
        load_report_data(f"mnist:{tmp_path / 'empty'}")
