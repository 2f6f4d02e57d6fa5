"""Smoothing framewise phone predictions along each utterance.

Phones last several frames (TIMIT's median phone is about 7 frames), so isolated one-frame
predictions are usually wrong. Three post-processors, each run utterance by utterance:

* :func:`median_smooth`: a median filter of the predicted class indices (as the task asks; class
  indices are not ordered, so the median of mixed labels can be a third label);
* :func:`majority_smooth`: the mode of the labels in the window (ties keep the centre label), the
  median filter's counterpart for nominal labels;
* :func:`viterbi_decode`: the best phone path of a hybrid NN/HMM (Bourlard & Morgan 1994,
  "Connectionist Speech Recognition"): one state per phone, transition probabilities counted from
  the training labels (:func:`transition_matrix`), scaled likelihoods ``p(s|x) / p(s)^prior_scale``
  as emissions, ``transition_weight`` scaling the transition log-probabilities.

A :class:`Smoothing` records a chosen post-processor and its parameters; :data:`SMOOTHERS` maps
each method name (``none`` included) to the function that applies it, and :func:`apply_smoothing`
dispatches through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainlab._threads import torch_threads
from trainlab.phoneme.files import NUM_CLASSES, Utterances
from trainlab.registry import Registry


@dataclass
class Smoothing:
    """A chosen post-processor and its parameters."""

    method: str = "none"  # a name in SMOOTHERS
    window: int = 5
    transition_weight: float = 1.0
    prior_scale: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)  # validation accuracy of each candidate


def transition_matrix(
    labels: np.ndarray, utts: Utterances, num_classes: int = NUM_CLASSES, alpha: float = 1.0
) -> np.ndarray:
    """Phone-to-phone transition probabilities counted over consecutive frames inside utterances.

    Args:
        labels: (N,) int class per training row; negative = unlabelled (no transition counted
            into or out of it).
        utts: utterance boundaries of those rows (no transition is counted across an utterance edge).
        alpha: add-alpha smoothing of the counts, so unseen transitions stay possible.

    Returns:
        (C, C) float64, row ``i`` = ``P(next = j | current = i)``; rows sum to 1 (uniform for a
        class with no observed successor and ``alpha=0``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    same_utt = np.ones(len(labels), dtype=bool)
    same_utt[utts.starts] = False  # row i's predecessor is in the same utterance
    keep = same_utt[1:] & (labels[1:] >= 0) & (labels[:-1] >= 0)
    cur = labels[1:][keep]
    prev = labels[:-1][keep]
    counts = np.bincount(prev * num_classes + cur, minlength=num_classes**2).astype(np.float64)
    counts = counts.reshape(num_classes, num_classes) + alpha
    totals = counts.sum(axis=1, keepdims=True)
    # a class never seen leaving: any next class is equally likely
    return np.where(totals > 0, counts / np.maximum(totals, 1e-300), 1.0 / num_classes)


def class_prior(
    labels: np.ndarray, num_classes: int = NUM_CLASSES, alpha: float = 1.0
) -> np.ndarray:
    """Class frequencies of the training labels (add-alpha; negative labels are skipped).

    Returns (C,) float64 summing to 1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes) + alpha
    return counts / counts.sum()


def median_smooth(pred: np.ndarray, utts: Utterances, window: int = 5) -> np.ndarray:
    """Median filter of predicted class indices inside each utterance (edges: nearest frame)."""
    from scipy.ndimage import median_filter

    out = np.empty_like(pred)
    for s, n in zip(utts.starts.tolist(), utts.lengths.tolist()):
        out[s : s + n] = median_filter(pred[s : s + n], size=window, mode="nearest")
    return out


def majority_smooth(
    pred: np.ndarray, utts: Utterances, window: int = 5, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """Most frequent label in a centred window inside each utterance; ties keep the frame's own."""
    from scipy.ndimage import uniform_filter1d

    out = np.empty_like(pred)
    for s, n in zip(utts.starts.tolist(), utts.lengths.tolist()):
        p = pred[s : s + n]
        onehot = np.zeros((n, num_classes), dtype=np.float32)
        onehot[np.arange(n), p] = 1.0
        votes = uniform_filter1d(onehot, size=window, axis=0, mode="nearest")  # (n, C)
        votes[np.arange(n), p] += 0.5 / window  # break ties towards the frame's own label
        out[s : s + n] = votes.argmax(axis=1)
    return out


def viterbi_decode(
    log_probs: np.ndarray | torch.Tensor,
    utts: Utterances,
    log_transitions: np.ndarray,
    log_prior: np.ndarray | None = None,
    *,
    transition_weight: float = 1.0,
    prior_scale: float = 0.0,
    batch_utterances: int = 256,
) -> np.ndarray:
    """Most likely phone sequence of each utterance under the hybrid HMM.

    The score of a path ``s_1..s_T`` is
    ``sum_t [log p(s_t|x_t) - prior_scale * log p(s_t)] + transition_weight * sum_t log A[s_{t-1}, s_t]``;
    the first frame has no transition term. Utterances are decoded in padded batches (one
    ``(B, C, C)`` max per frame), frames past an utterance's end leave its scores unchanged.

    Args:
        log_probs: (N, C) log posteriors of the model (log-softmax of its outputs).
        utts: boundaries of the N rows.
        log_transitions: (C, C) log transition matrix.
        log_prior: (C,) log class prior, used when ``prior_scale`` > 0.
        transition_weight: scale of the transition log-probabilities (0 = framewise argmax).
        prior_scale: how much of the prior to divide out of the posteriors.

    Returns:
        (N,) int64 decoded classes.
    """
    lp = torch.as_tensor(np.asarray(log_probs), dtype=torch.float32)
    if prior_scale and log_prior is not None:
        lp = lp - prior_scale * torch.as_tensor(log_prior, dtype=torch.float32)
    # trans_t[j, i] = weight * log A[i, j]: the reduction over i runs along contiguous memory
    trans_t = (
        transition_weight * torch.as_tensor(log_transitions, dtype=torch.float32).T.contiguous()
    )
    out = np.empty(len(lp), dtype=np.int64)
    order = np.argsort(utts.lengths, kind="stable")  # similar lengths share a batch
    # thousands of tiny sequential ops: extra threads only add synchronisation (and stall badly
    # on a busy machine)
    with torch_threads(1):
        for lo in range(0, len(order), batch_utterances):
            which = order[lo : lo + batch_utterances]
            _viterbi_batch(lp, utts.starts[which], utts.lengths[which], trans_t, out)
    return out


def _viterbi_batch(
    lp: torch.Tensor,
    starts: np.ndarray,
    lengths: np.ndarray,
    trans_t: torch.Tensor,
    out: np.ndarray,
) -> None:
    b, t_max, c = len(starts), int(lengths.max()), lp.shape[1]
    rows = _padded_rows(starts, lengths, t_max)  # (B, T), -1 where padded
    emis = lp[torch.as_tensor(np.maximum(rows, 0))]  # (B, T, C)
    alive = torch.as_tensor(rows >= 0)  # (B, T)
    score = emis[:, 0].clone()  # (B, C)
    back = torch.zeros((b, t_max, c), dtype=torch.int64)
    for t in range(1, t_max):
        # cand[b, j, i]: best path ending in i at t-1, then i -> j
        best, arg = (score[:, None, :] + trans_t[None]).max(dim=2)  # (B, C, C) -> (B, C)
        new = best + emis[:, t]
        live = alive[:, t, None]
        score = torch.where(live, new, score)
        back[:, t] = torch.where(live, arg, torch.arange(c)[None].expand(b, c))
    state = score.argmax(dim=1)  # (B,)
    path = torch.empty((b, t_max), dtype=torch.int64)
    idx = torch.arange(b)
    for t in range(t_max - 1, -1, -1):
        path[:, t] = state
        state = back[idx, t, state]
    path_np = path.numpy()
    for k in range(b):
        n = int(lengths[k])
        out[starts[k] : starts[k] + n] = path_np[k, :n]


def _padded_rows(starts: np.ndarray, lengths: np.ndarray, t_max: int) -> np.ndarray:
    offs = np.arange(t_max)[None, :]
    return np.where(offs < lengths[:, None], starts[:, None] + offs, -1)


#: ``(log_probs (N, C), utts, smoothing, log_transitions, log_prior) -> (N,) classes``
Smoother = Callable[
    [np.ndarray, Utterances, Smoothing, np.ndarray | None, np.ndarray | None], np.ndarray
]
SMOOTHERS: Registry[Smoother] = Registry("smoothing")


@SMOOTHERS.register("none", "the framewise argmax, unsmoothed")
def _none(
    log_probs: np.ndarray,
    utts: Utterances,
    s: Smoothing,
    log_transitions: np.ndarray | None,
    log_prior: np.ndarray | None,
) -> np.ndarray:
    return log_probs.argmax(axis=1)


@SMOOTHERS.register("median", "a median filter of the argmax classes")
def _median(
    log_probs: np.ndarray,
    utts: Utterances,
    s: Smoothing,
    log_transitions: np.ndarray | None,
    log_prior: np.ndarray | None,
) -> np.ndarray:
    return median_smooth(log_probs.argmax(axis=1), utts, s.window)


@SMOOTHERS.register("majority", "the most frequent argmax class in a window")
def _majority(
    log_probs: np.ndarray,
    utts: Utterances,
    s: Smoothing,
    log_transitions: np.ndarray | None,
    log_prior: np.ndarray | None,
) -> np.ndarray:
    return majority_smooth(log_probs.argmax(axis=1), utts, s.window)


@SMOOTHERS.register("viterbi", "the best phone path under the hybrid NN/HMM")
def _viterbi(
    log_probs: np.ndarray,
    utts: Utterances,
    s: Smoothing,
    log_transitions: np.ndarray | None,
    log_prior: np.ndarray | None,
) -> np.ndarray:
    if log_transitions is None:
        raise ValueError("Viterbi decoding needs the transition matrix")
    return viterbi_decode(
        log_probs,
        utts,
        log_transitions,
        log_prior,
        transition_weight=s.transition_weight,
        prior_scale=s.prior_scale,
    )


def apply_smoothing(
    log_probs: np.ndarray,
    utts: Utterances,
    smoothing: Smoothing,
    log_transitions: np.ndarray | None,
    log_prior: np.ndarray | None,
) -> np.ndarray:
    """Predicted classes after the post-processor ``smoothing``.

    Args:
        log_probs: (N, C) log posteriors.
        utts: boundaries of the N rows.
        smoothing: the method (a name in :data:`SMOOTHERS`) and its parameters.
        log_transitions: (C, C) log transition matrix (Viterbi only).
        log_prior: (C,) log class prior (Viterbi only).

    Returns:
        (N,) int64 classes.

    Raises:
        ConfigError: an unknown method.
    """
    smoother = SMOOTHERS.get(smoothing.method)
    return smoother(log_probs, utts, smoothing, log_transitions, log_prior)
