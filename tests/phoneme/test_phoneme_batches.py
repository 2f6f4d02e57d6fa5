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


def test_chunked_batches_cover_every_frame_once_in_pieces_that_move(data: Path):
    d = load_timit(data)
    utts = d.train_utterances()
    which = np.arange(8)
    b = UtteranceBatches(d.train_x, d.train_y, utts, which, 4, frames=1, shuffle=True, chunk=16,
                         seed=3)  # fmt: skip
    firsts = []
    for _ in range(2):
        seen = []
        for (xb, lengths), yb in b:
            assert int(lengths.max()) <= 16 and len(lengths) <= 4
            y2 = yb.view(len(lengths), -1)
            for k, n in enumerate(lengths.tolist()):
                assert (y2[k, n:] == -100).all()
                seen.append(xb[k, :n, 0].numpy())
        np.testing.assert_array_equal(
            np.sort(np.concatenate(seen)), np.sort(d.train_x[utts.rows(which), 195])
        )
        firsts.append(b.pieces[0].copy())
        assert len(b.batches()) <= len(b)
    assert not np.array_equal(firsts[0], firsts[1])  # new offsets each pass
    assert UtteranceBatches(d.train_x, None, utts, which, 4, chunk=16).chunk == 0  # eval: whole
