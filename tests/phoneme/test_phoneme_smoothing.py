"""Smoothing of framewise predictions: Viterbi against a brute-force reference, filters, transitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.phoneme.files import Utterances
from trainlab.phoneme.infer import choose_smoothing
from trainlab.phoneme.smoothing import (
    SMOOTHERS,
    Smoothing,
    apply_smoothing,
    class_prior,
    majority_smooth,
    median_smooth,
    transition_matrix,
    viterbi_decode,
)


def _utts(lengths: list[int]) -> Utterances:
    lengths_a = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths_a)[:-1]]).astype(np.int64)
    return Utterances([f"u{i}" for i in range(len(lengths))], starts, lengths_a)


def _path_score(path, lp, log_a, w):
    return lp[np.arange(len(path)), path].sum() + w * sum(
        log_a[a, b] for a, b in zip(path[:-1], path[1:])
    )


def _reference_viterbi(lp: np.ndarray, log_a: np.ndarray, w: float) -> np.ndarray:
    """Textbook float64 Viterbi for one utterance."""
    t_len, c = lp.shape
    delta = lp[0].astype(np.float64)
    back = np.zeros((t_len, c), dtype=np.int64)
    for t in range(1, t_len):
        cand = delta[:, None] + w * log_a
        back[t] = cand.argmax(0)
        delta = cand.max(0) + lp[t]
    path = [int(delta.argmax())]
    for t in range(t_len - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return np.array(path[::-1])


def test_viterbi_is_the_best_path_by_exhaustive_search():
    rng = np.random.default_rng(0)
    c, lengths = 3, [5, 1, 4]
    lp = np.log(rng.dirichlet(np.ones(c), size=sum(lengths)))
    log_a = np.log(rng.dirichlet(np.ones(c), size=c))
    utts = _utts(lengths)
    got = viterbi_decode(lp, utts, log_a, transition_weight=1.3)
    for s, n in zip(utts.starts, utts.lengths):
        seg = lp[s : s + n]
        best = max(itertools.product(range(c), repeat=int(n)),
                   key=lambda p: _path_score(np.array(p), seg, log_a, 1.3))  # fmt: skip
        np.testing.assert_allclose(
            _path_score(got[s : s + n], seg, log_a, 1.3),
            _path_score(np.array(best), seg, log_a, 1.3),
        )


def test_batched_viterbi_equals_reference_on_ragged_utterances():
    rng = np.random.default_rng(1)
    c, lengths = 39, [1, 2, 30, 7, 55, 13, 3]
    lp = np.log(rng.dirichlet(np.ones(c) * 0.3, size=sum(lengths))).astype(np.float32)
    a = rng.dirichlet(np.ones(c) * 0.2, size=c) + np.eye(c) * 5
    log_a = np.log(a / a.sum(1, keepdims=True))
    utts = _utts(lengths)
    for bs in (1, 3, 256):
        got = viterbi_decode(lp, utts, log_a, transition_weight=2.0, batch_utterances=bs)
        for s, n in zip(utts.starts, utts.lengths):
            ref = _reference_viterbi(lp[s : s + n].astype(np.float64), log_a, 2.0)
            np.testing.assert_array_equal(got[s : s + n], ref)


def test_viterbi_without_transitions_is_argmax_and_prior_division():
    rng = np.random.default_rng(2)
    lp = np.log(rng.dirichlet(np.ones(5), size=20))
    log_a = np.log(np.full((5, 5), 0.2))
    utts = _utts([8, 12])
    np.testing.assert_array_equal(
        viterbi_decode(lp, utts, log_a, transition_weight=0.0), lp.argmax(1)
    )
    log_p = np.log(np.array([0.9, 0.025, 0.025, 0.025, 0.025]))
    got = viterbi_decode(lp, utts, log_a, log_p, transition_weight=0.0, prior_scale=1.0)
    np.testing.assert_array_equal(got, (lp - log_p).argmax(1))


def test_transitions_are_counted_inside_utterances_only():
    labels = np.array([0, 0, 1, 2, 2, 0])
    utts = _utts([3, 3])  # 0 0 1 | 2 2 0: no 1 -> 2 transition across the edge
    a = transition_matrix(labels, utts, num_classes=3, alpha=0.0)
    np.testing.assert_allclose(a[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(a[2], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(a[1], [1 / 3] * 3)  # nothing seen leaving class 1: uniform
    a1 = transition_matrix(labels, utts, num_classes=3, alpha=1.0)
    np.testing.assert_allclose(a1.sum(1), 1.0)
    np.testing.assert_allclose(a1[1], [1 / 3] * 3)
    np.testing.assert_allclose(class_prior(labels, 3, alpha=0), [0.5, 1 / 6, 1 / 3])


def test_median_and_majority_filters_stay_inside_utterances():
    pred = np.array([4, 4, 9, 4, 4, 7, 7, 1, 7, 7])
    utts = _utts([5, 5])
    np.testing.assert_array_equal(median_smooth(pred, utts, 3), [4, 4, 4, 4, 4, 7, 7, 7, 7, 7])
    np.testing.assert_array_equal(majority_smooth(pred, utts, 3), [4, 4, 4, 4, 4, 7, 7, 7, 7, 7])
    # the median of unordered labels may be a third label; the majority never is
    three = np.array([1, 20, 5])
    assert median_smooth(three, _utts([3]), 3)[1] == 5
    assert majority_smooth(three, _utts([3]), 3)[1] == 20  # a tie keeps the frame's own
    # a single-frame utterance is untouched
    assert majority_smooth(np.array([3, 8]), _utts([1, 1]), 5).tolist() == [3, 8]


def test_choose_smoothing_picks_the_best_on_noisy_labels():
    rng = np.random.default_rng(3)
    lengths = [60] * 10
    truth = np.concatenate([np.repeat(rng.integers(0, 6, size=10), 6) for _ in lengths])
    utts = _utts(lengths)
    logits = np.eye(6)[truth] * 2.0 + rng.normal(0, 1.2, size=(len(truth), 6))
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    log_a = np.log(transition_matrix(truth, utts, 6))
    log_p = np.log(class_prior(truth, 6))
    s = choose_smoothing(lp, truth, utts, log_a, log_p, method="auto")
    raw = s.scores["raw"]
    assert s.method != "none"
    assert s.scores["viterbi"]["accuracy"] > raw + 0.05
    # the returned parameters are the in-sample best; reported accuracies are cross-fitted
    best = apply_smoothing(lp, utts, s, log_a, log_p)
    assert (best == truth).mean() == pytest.approx(s.scores[s.method]["accuracy_in_sample"])
    for name in ("median", "majority", "viterbi"):
        assert 0.0 < s.scores[name]["accuracy"] <= 1.0
    insample = choose_smoothing(lp, truth, utts, log_a, log_p, folds=1)
    assert (
        insample.scores["viterbi"]["accuracy"] == insample.scores["viterbi"]["accuracy_in_sample"]
    )
    m = choose_smoothing(lp, truth, utts, log_a, log_p, method="median")
    assert m.method == "median" and m.window in (3, 5, 7, 9)
    assert (
        apply_smoothing(lp, utts, Smoothing("none"), None, None).tolist() == lp.argmax(1).tolist()
    )


def _tuned_on(lp, labels, utts, log_a, log_p, which, grid):
    """Reference: smooth the utterances ``which`` alone with every grid point of each method and
    keep the first best (decoding the subset itself, not reusing the whole set's predictions)."""
    sub, rows = utts.subset(which), utts.rows(which)
    best = {}
    for s in grid:
        pred = apply_smoothing(lp[rows], sub, s, log_a, log_p)
        a = (pred == labels[rows])[labels[rows] >= 0].mean()
        if s.method not in best or a > best[s.method][0]:
            best[s.method] = (a, s)
    return best


def test_cross_fitted_scores_equal_smoothing_each_fold_alone():
    rng = np.random.default_rng(7)
    lengths = rng.integers(5, 80, size=13).tolist()
    utts = _utts(lengths)
    truth = np.concatenate([np.repeat(rng.integers(0, 5, size=n), 4)[:n] for n in lengths])
    truth[rng.random(len(truth)) < 0.1] = -1  # unlabelled rows are not scored
    logits = np.eye(5)[np.maximum(truth, 0)] * 1.5 + rng.normal(0, 1.0, size=(len(truth), 5))
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    log_a = np.log(transition_matrix(np.maximum(truth, 0), utts, 5))
    log_p = np.log(class_prior(np.maximum(truth, 0), 5))
    windows, weights, priors = (3, 5), (0.5, 1.0, 2.0), (0.0, 1.0)
    grid = [Smoothing("none")]
    grid += [Smoothing(m, window=w) for m in ("median", "majority") for w in windows]
    grid += [
        Smoothing("viterbi", transition_weight=t, prior_scale=q) for t in weights for q in priors
    ]
    got = choose_smoothing(
        lp, truth, utts, log_a, log_p,
        windows=windows, transition_weights=weights, prior_scales=priors, folds=3, seed=5,
    )  # fmt: skip
    group = np.random.default_rng(5).permutation(len(utts)) % 3
    correct = dict.fromkeys(("none", "median", "majority", "viterbi"), 0)
    for f in range(3):
        tuned = _tuned_on(lp, truth, utts, log_a, log_p, np.flatnonzero(group != f), grid)
        held = np.flatnonzero(group == f)
        for m, (_, s) in tuned.items():
            pred = apply_smoothing(lp[utts.rows(held)], utts.subset(held), s, log_a, log_p)
            correct[m] += int((pred == truth[utts.rows(held)]).sum())
    every = _tuned_on(lp, truth, utts, log_a, log_p, np.arange(len(utts)), grid)
    for m in ("median", "majority", "viterbi"):
        assert got.scores[m]["accuracy"] == pytest.approx(
            correct[m] / (truth >= 0).sum(), abs=1e-12
        )
        assert got.scores[m]["accuracy_in_sample"] == pytest.approx(every[m][0], abs=1e-12)
    assert got.scores["raw"] == pytest.approx(every["none"][0], abs=1e-12)


def test_every_registered_smoother_is_applied_by_name():
    rng = np.random.default_rng(4)
    utts = _utts([9, 4, 1])
    lp = np.log(rng.dirichlet(np.ones(5), size=utts.num_rows))
    log_a = np.log(rng.dirichlet(np.ones(5), size=5))
    pred = lp.argmax(1)
    want = {
        "none": pred,
        "median": median_smooth(pred, utts, 3),
        "majority": majority_smooth(pred, utts, 3),
        "viterbi": viterbi_decode(lp, utts, log_a, transition_weight=2.0),
    }
    assert SMOOTHERS.names() == sorted(want)
    for name in SMOOTHERS:
        s = Smoothing(name, window=3, transition_weight=2.0)
        np.testing.assert_array_equal(apply_smoothing(lp, utts, s, log_a, None), want[name])
    with pytest.raises(ConfigError, match="unknown smoothing 'blur'"):
        apply_smoothing(lp, utts, Smoothing("blur"), log_a, None)
    with pytest.raises(ValueError, match="transition matrix"):
        apply_smoothing(lp, utts, Smoothing("viterbi"), None, None)


def test_viterbi_restores_the_thread_count():
    torch.set_num_threads(2)
    viterbi_decode(np.zeros((4, 3)), _utts([4]), np.zeros((3, 3)))
    assert torch.get_num_threads() == 2
