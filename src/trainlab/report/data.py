"""The report's data: real handwritten digits, split once with a fixed seed.

``digits`` (the default) is scikit-learn's bundled copy of the UCI "Optical Recognition of
Handwritten Digits" set: 1,797 real 8x8 images, no download. ``mnist:DIR`` reads an MNIST or
Fashion-MNIST IDX folder (:mod:`trainlab.data.mnist`); the report uses its 10,000-image ``t10k``
split (or a 10,000-image sample of ``train`` where only that is present), so that the whole report
keeps to a few minutes on a laptop CPU.

Both are split stratified (80 % train / 20 % validation, i.e. 8,000/2,000 for MNIST) with a fixed
split seed and standardised with the training set's mean and standard deviation.

LeNet expects 28x28 inputs. :meth:`ImageData.lenet` gives MNIST as is; the 8x8 digits are resized
bilinearly to 20x20 and zero-padded to 28x28, the layout MNIST uses (a 20x20 digit centred in a
28x28 frame), so the same LeNet runs on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab.errors import DataError, TrainlabError

__all__ = ["ImageData", "load_report_data", "parse_data_spec"]

SPLIT_SEED = 0
VAL_FRACTION = 0.2
MNIST_MAX = 10_000


@dataclass
class ImageData:
    """A standardised train/validation split of single-channel images with labels 0..9."""

    name: str  # "digits" or "mnist:DIR"
    description: str
    x_train: Tensor  # (N, 1, H, W) float32, standardised
    y_train: Tensor  # (N,) int64
    x_val: Tensor
    y_val: Tensor
    source: str = ""
    noun: str = "the images"  # how the text refers to the data ("on the digits")
    _lenet: tuple[Tensor, Tensor] | None = field(default=None, repr=False)

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def n_features(self) -> int:
        return int(self.x_train[0].numel())

    @property
    def n_classes(self) -> int:
        return 10

    def flat(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """``((x_train, y_train), (x_val, y_val))`` with images flattened to vectors for MLPs."""
        # (N, 1, H, W) -> (N, H*W)
        return (
            (self.x_train.flatten(1), self.y_train),
            (self.x_val.flatten(1), self.y_val),
        )

    def lenet(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """``((x_train, y_train), (x_val, y_val))`` as 28x28 images for LeNet (see module doc)."""
        if self._lenet is None:
            self._lenet = (to_28x28(self.x_train), to_28x28(self.x_val))
        return (self._lenet[0], self.y_train), (self._lenet[1], self.y_val)

    def summary(self) -> dict[str, Any]:
        """Sizes and provenance, for results.json and the report's header."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "n_train": int(len(self.y_train)),
            "n_val": int(len(self.y_val)),
            "image_size": [self.image_size, self.image_size],
            "n_classes": self.n_classes,
            "split_seed": SPLIT_SEED,
            "val_fraction": VAL_FRACTION,
            "train_class_counts": np.bincount(self.y_train.numpy(), minlength=10).tolist(),
        }


def to_28x28(x: Tensor) -> Tensor:
    """Resize images to a 20x20 digit centred in a 28x28 frame (MNIST's layout); 28x28 passes."""
    if x.shape[-1] == 28 and x.shape[-2] == 28:
        return x
    background = x.amin()  # standardised zero ink; pad with it so the frame looks like the margin
    # (N, 1, h, w) -> (N, 1, 20, 20) -> (N, 1, 28, 28)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(x - background, (4, 4, 4, 4)) + background


def parse_data_spec(spec: str) -> tuple[str, Path | None]:
    """``"digits"`` -> ``("digits", None)``; ``"mnist:DIR"`` -> ``("mnist", Path(DIR))``."""
    if spec == "digits":
        return "digits", None
    kind, sep, rest = spec.partition(":")
    if kind in ("mnist", "fashion", "fashion-mnist") and sep and rest:
        return "mnist", Path(rest).expanduser()
    raise TrainlabError(
        f"unknown data {spec!r}; use 'digits' (built in) or 'mnist:DIR' (an MNIST or "
        "Fashion-MNIST IDX folder)"
    )


def _stratified_split(
    y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=val_fraction, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(va)


def _standardise(x_tr: np.ndarray, x_va: np.ndarray) -> tuple[Tensor, Tensor]:
    mean, std = float(x_tr.mean()), float(x_tr.std())
    # (N, H, W) -> (N, 1, H, W)
    to_t = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32)).unsqueeze(1)  # noqa: E731
    return to_t(x_tr), to_t(x_va)


def load_report_data(spec: str = "digits") -> ImageData:
    """Load and split the report's data.

    Args:
        spec: ``"digits"`` or ``"mnist:DIR"`` (MNIST or Fashion-MNIST IDX files, gzip or not).

    Returns:
        The standardised split.

    Raises:
        DataError: the MNIST folder is missing or holds malformed files.
    """
    kind, folder = parse_data_spec(spec)
    if kind == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images = d.images.astype(np.float64) / 16.0  # (1797, 8, 8), ink in 0..16
        labels = d.target.astype(np.int64)
        description = "scikit-learn digits: 1,797 real handwritten 8x8 digits (UCI), 10 classes"
        source = "sklearn.datasets.load_digits"
    else:
        from trainlab.data.mnist import available_splits, load_mnist

        assert folder is not None
        splits = available_splits(folder)
        if not splits:
            load_mnist(folder, "t10k")  # raises the DataError naming the missing file
        split = "t10k" if "t10k" in splits else "train"
        raw, labels = load_mnist(folder, split)
        if len(labels) > MNIST_MAX:
            keep, _ = _stratified_split(labels, 1 - MNIST_MAX / len(labels), SPLIT_SEED)
            raw, labels = raw[keep], labels[keep]
        if len(np.unique(labels)) < 10 or np.bincount(labels).min() < 2:
            raise DataError(folder, "need at least 2 images of each digit 0..9 to split train/val")
        images = raw.astype(np.float64) / 255.0
        description = f"{len(labels):,} MNIST-format 28x28 images ({split} split of {folder})"
        source = str(folder)
    tr, va = _stratified_split(labels, VAL_FRACTION, SPLIT_SEED)
    x_tr, x_va = _standardise(images[tr], images[va])
    return ImageData(
        name=spec,
        description=description,
        x_train=x_tr,
        y_train=torch.from_numpy(labels[tr]),
        x_val=x_va,
        y_val=torch.from_numpy(labels[va]),
        source=source,
        noun="the digits" if kind == "digits" else "the images",
    )
