"""Inference: log-posteriors per frame, in the order of the utterances asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.phoneme.batches import frame_columns
from trainlab.phoneme.files import load_timit
from trainlab.phoneme.infer import log_posteriors
from trainlab.phoneme.models import SequenceRNN


def test_sequence_posteriors_come_back_in_utterance_order(data: Path):
    d = load_timit(data)
    utts = d.train_utterances()
    torch.manual_seed(0)
    net = SequenceRNN(3 * 39, hidden_size=8, num_layers=1, proj_size=8).eval()
    which = np.array([5, 1, 3])
    lp = log_posteriors(
        net, d.train_x, utts, which, sequence=True, rnn_frames=3, utterances_per_batch=2
    )
    sub = utts.subset(which)
    for j, u in enumerate(which):
        s, n = int(utts.starts[u]), int(utts.lengths[u])
        x = torch.from_numpy(np.array(d.train_x[s : s + n, frame_columns(3)]))[None]
        ref = torch.log_softmax(net(x, torch.tensor([n])), -1)[0].detach().numpy()
        np.testing.assert_allclose(lp[sub.starts[j] : sub.starts[j] + n], ref, atol=1e-5)


def test_one_row_utterances_are_read_as_their_own_eleven_frames():
    from trainlab.phoneme.files import Utterances
    from trainlab.phoneme.infer import log_posteriors
    from trainlab.phoneme.models import SequenceRNN

    torch.manual_seed(0)
    net = SequenceRNN(3 * 39, hidden_size=8, num_layers=1, proj_size=8).eval()
    frames = np.random.default_rng(0).standard_normal((11, 39)).astype(np.float32)
    row = frames.reshape(1, 429)
    x = np.concatenate([row, row])  # two one-row utterances
    utts = Utterances(["a", "b"], np.array([0, 1]), np.array([1, 1]))
    lp = log_posteriors(net, x, utts, sequence=True, rnn_frames=3)
    padded = np.concatenate([frames[:1], frames, frames[-1:]])  # edge frames repeat
    seq = np.stack([padded[j : j + 3].reshape(-1) for j in range(11)])[None]
    want = torch.log_softmax(net(torch.from_numpy(seq), torch.tensor([11]))[0, 5], dim=-1)
    np.testing.assert_allclose(lp[0], want.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lp[1], lp[0])
