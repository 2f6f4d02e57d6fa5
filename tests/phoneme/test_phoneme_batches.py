"""Batches read from memory-mapped rows: random frames, and padded whole utterances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.phoneme.batches import FrameBatches, UtteranceBatches, frame_columns
from trainlab.phoneme.files import load_timit


def test_frame_batches_cover_the_subset_once_per_pass(data: Path):
    d = load_timit(data)
    rows = np.arange(10, 900, 3)
    seen = []
    for xb, yb in FrameBatches(d.train_x, d.train_y, rows, 64, shuffle=True, seed=1):
        assert xb.dtype == torch.float32 and yb.dtype == torch.int64
        seen.append(xb[:, 0].numpy())
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(d.train_x[rows, 0]))


def test_utterance_batches_pad_and_mask(data: Path):
    d = load_timit(data)
    utts = d.train_utterances()
    which = np.arange(6)
    b = UtteranceBatches(d.train_x, d.train_y, utts, which, 3, frames=3, shuffle=True, seed=0)
    total = 0
    for (xb, lengths), yb in b:
        t = int(lengths.max())
        assert xb.shape == (len(lengths), t, 3 * 39) and yb.shape == (len(lengths) * t,)
        y2 = yb.view(len(lengths), t)
        for k, n in enumerate(lengths.tolist()):
            assert (y2[k, n:] == -100).all() and (y2[k, :n] >= 0).all()
        total += int(lengths.sum())
    assert total == utts.lengths[:6].sum()
    assert frame_columns(1) == slice(195, 234) and frame_columns(11) == slice(0, 429)
