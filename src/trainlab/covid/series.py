"""Each state's daily series behind the COVID windows, and history features from earlier days.

A row of the Kaggle files is a window of D consecutive days of one state; the next window of the
state starts one day later, so days 2..D of a row are days 1..D-1 of its successor. Chaining rows
through that exact overlap (in any row order) rebuilds each state's daily series of every feature.
``tested_positive`` is a 7-day moving average of a daily rate p: its change
``tp(t) - tp(t-1) = (p(t) - p(t-7)) / 7`` carries the noise of the day a week earlier with a minus
sign, so the change of the day to predict is anti-correlated (about -0.47) with the change seven
days before. A row's own window only reaches D-1 days back; the rebuilt series reaches further.

History features of a row whose last day is t use days strictly before t only (the row's target
and every later day are never read, whatever rows the file holds):

* ``hist_tp_change_k`` = tp(t-k) - tp(t-k-1) for k = 1..lags;
* ``hist_tp_noise_7``, an estimate of p(t-7) minus its local trend: with the detrended weekly
  changes e_j = 7 * (c(t-7j) - (tp(t-7j+3) - tp(t-7j-4)) / 7) (c = the day's change), the noise of
  t-7 is the sum of e_1..e_m plus the noise of t-7(m+1); if daily noise is independent, its best
  linear estimate weights e_j by (m + 1 - j) / (m + 1), with m the number of whole weeks available
  (at most ``weeks``). It needs 11 days before t and improves with every further week.

At prediction time the rows of the file being predicted are chained among themselves and attached
to the stored end of the training series (:class:`SeriesTails`): by exact overlap when the file
repeats training days, or when its first day is the day right after the training series ends
(the held-out rows of this repository's copy start there). That adjacency is recognised by
continuity: the one-day jump from the last stored day to the chain's first day, in units of the
typical one-day change of each feature, must be as small as a real one-day change, and the
file as a whole must continue the training days (:func:`continues_training`): a single chain's
small jump happens across weeks of unknown days too, and history read across such a gap would
be wrong.

The real 2021 files: the training copy holds one chain of consecutive windows per state (51-52
windows, 53-54 days). No row of ``covid.test.csv`` shares a day with a training row or with another
test row; each state's test rows are consecutive non-overlapping windows (every third window of a
block of about 68 days: 862 of 893 rows have a window starting the next day). For states 0-19 (AL
to MN in file order) that block lies after the training days, weeks away from this copy's last
day; for states 20-39 (MS to WI) it ends right before the first training day. So no test row
continues the training days and none has the full history. Test windows of a state are linked to
each other end to start (:func:`link_adjacent`) only where the one-day jump is small, mutual, and
clearly better than every other candidate; a linked row then has a partial history (every D-th
day's tested_positive is another window's target, missing), read only from days before its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainlab._io import atomic_write_with
from trainlab.covid.files import TARGET_FEATURE, CovidFrame, CovidLayout, day_column
from trainlab.errors import DataError

HISTORY_PREFIX = "hist_"
# Largest mean squared one-day jump (in units of each feature's typical one-day change) accepted
# as "this chain starts the day after the training series". True one-day continuations of the
# real 2021 data score about 1 (99th percentile below 4); the Kaggle test windows, weeks away,
# score 25 and more.
ADJACENT_MAX_JUMP = 6.0
# Largest median over a file's states of the best such jump for the file to count as continuing
# the training days (:func:`continues_training`): one-day continuations of the real 2021 data
# have a median of 0.75, windows two days later 1.8, two weeks later 18.
FILE_CONTINUES_MAX = 2.0


@dataclass(frozen=True)
class HistorySpec:
    """Which history features to build (see the module docstring).

    Attributes:
        lags: changes of tested_positive at lags 1..lags (0: none).
        weeks: most weeks the noise estimate of day t-7 may use (0: no noise estimate).
        back: deepest day of the test-layout history (0: none), see :meth:`partial_lags`.
    """

    lags: int = 8
    weeks: int = 7
    back: int = 0

    def columns(self) -> list[str]:
        """The names of the features that need every earlier day, in order."""
        cols = [f"{HISTORY_PREFIX}tp_change_{k}" for k in range(1, self.lags + 1)]
        return cols + ([f"{HISTORY_PREFIX}tp_noise_7"] if self.weeks > 0 else [])

    def partial_lags(self, n_days: int) -> list[int]:
        """Lags k of the test-layout history: days before the row's window, up to ``back``,
        that a test file knows (every D-th day back from the target day is another window's
        target, unknown)."""
        return [k for k in range(n_days + 1, self.back + 1) if k % n_days != 0]

    def partial_columns(self, n_days: int) -> list[str]:
        """The names of the test-layout history features: tp(t-1) - tp(t-k)."""
        return [f"{HISTORY_PREFIX}tp_back_{k}" for k in self.partial_lags(n_days)]

    @property
    def depth(self) -> int:
        """Days before t the deepest feature may read."""
        return max(self.lags + 1, 7 * self.weeks + 4 if self.weeks > 0 else 0, self.back, 1)

    @property
    def min_depth(self) -> int:
        """Days before t a row needs for every feature to be defined."""
        return max(self.lags + 1, 11 if self.weeks > 0 else 0)


def is_history_column(name: str) -> bool:
    """Whether ``name`` is a history feature (not a column of the file)."""
    return name.startswith(HISTORY_PREFIX)


def day_values(frame: CovidFrame) -> np.ndarray:
    """(N, D, F) every feature of every day of each row (``layout.features`` order); the last
    day's tested_positive is the target where the frame has one, NaN otherwise."""
    layout = frame.layout
    n, d = len(frame), layout.n_days
    out = np.full((n, d, len(layout.features)), np.nan)
    for j in range(d):
        for k, f in enumerate(layout.features):
            col = day_column(f, j + 1)
            if col == layout.target:
                if frame.y is not None:
                    out[:, j, k] = frame.y
            else:
                out[:, j, k] = frame.X[col].to_numpy()
    return out


def _survey_index(layout: CovidLayout) -> list[int]:
    return [k for k, f in enumerate(layout.features) if f != TARGET_FEATURE]


def chain_rows(frame: CovidFrame, days: np.ndarray | None = None) -> list[np.ndarray]:
    """Rows chained through their exact overlap: a list of row-index arrays in time order.

    Row j follows row i when days 2..D of i equal days 1..D-1 of j (survey features, which the
    test layout has on every day) in the same state. A row that could follow several rows (a
    repeated window) goes to the first in file order. Chains are grouped by state, in order of
    their first row in the file.

    Args:
        frame: a training or test frame.
        days: :func:`day_values` of the frame, if already computed.

    Returns:
        One array per chain; every row is in exactly one chain.
    """
    days = day_values(frame) if days is None else days
    survey = days[:, :, _survey_index(frame.layout)]  # (N, D, F-1)
    state = frame.state
    n = len(frame)
    heads: dict[tuple[int, bytes], list[int]] = {}
    for i in range(n):
        heads.setdefault((int(state[i]), survey[i, :-1].tobytes()), []).append(i)
    succ = np.full(n, -1)
    has_pred = np.zeros(n, dtype=bool)
    for i in range(n):
        cands = heads.get((int(state[i]), survey[i, 1:].tobytes()), [])
        # prefer the next row in file order; skip rows already claimed (duplicated windows)
        for j in sorted(cands, key=lambda j: (j <= i, j)):
            if j != i and not has_pred[j]:
                succ[i] = j
                has_pred[j] = True
                break
    chains: list[np.ndarray] = []
    visited = np.zeros(n, dtype=bool)
    for s in np.unique(state):
        for start in np.flatnonzero((state == s) & ~has_pred):
            chain, i = [], int(start)
            while i >= 0 and not visited[i]:
                visited[i] = True
                chain.append(i)
                i = int(succ[i])
            chains.append(np.array(chain, dtype=np.int64))
        for k in np.flatnonzero((state == s) & ~visited):  # cycles: identical windows repeating
            visited[k] = True
            chains.append(np.array([k], dtype=np.int64))
    return chains


@dataclass
class SeriesTails:
    """The last days of every training chain, all features: what prediction-time history needs.

    Attributes:
        features: feature names (``layout.features``).
        state: (C,) state index of each chain.
        values: (C, K, F) the chain's last K days, NaN-padded at the front for shorter chains.
        step_scale: (F,) root mean square one-day change of each feature in the training series
            (the unit of the continuity test).
    """

    features: list[str]
    state: np.ndarray
    values: np.ndarray
    step_scale: np.ndarray

    def save(self, path: Path) -> None:
        """Write a compressed ``.npz`` (no pickled objects)."""
        atomic_write_with(path, self._write)

    def _write(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez_compressed(
                f,
                features=np.array(self.features),
                state=self.state,
                values=self.values,
                step_scale=self.step_scale,
            )

    @classmethod
    def load(cls, path: Path) -> SeriesTails:
        """Read what :meth:`save` wrote; DataError if missing or corrupt."""
        if not path.is_file():
            raise DataError(path, "stored training series missing")
        try:
            with np.load(path, allow_pickle=False) as z:
                tails = cls(
                    [str(f) for f in z["features"]],
                    z["state"].astype(np.int64),
                    z["values"].astype(np.float64),
                    z["step_scale"].astype(np.float64),
                )
        except Exception as e:  # zip, key and format errors of many kinds
            raise DataError(path, f"corrupt stored training series ({type(e).__name__})") from None
        _check_tails(path, tails)
        return tails


def _check_tails(path: Path, tails: SeriesTails) -> None:
    """Every field of a stored ``history.npz`` has the shape the others imply (DataError naming
    the field otherwise)."""
    f = len(tails.features)
    if tails.values.ndim != 3 or tails.values.shape[2] != f:
        raise DataError(
            path,
            f"field 'values' has shape {tails.values.shape}, expected (chains, days, {f}) "
            f"for the {f} stored features",
        )
    c = tails.values.shape[0]
    if tails.state.shape != (c,):
        raise DataError(path, f"field 'state' has shape {tails.state.shape}, expected ({c},)")
    if tails.step_scale.shape != (f,):
        raise DataError(
            path, f"field 'step_scale' has shape {tails.step_scale.shape}, expected ({f},)"
        )
    if not np.isfinite(tails.step_scale).all() or (tails.step_scale <= 0).any():
        raise DataError(path, "field 'step_scale' must hold positive finite numbers")


@dataclass
class Timeline:
    """Rows placed on per-state day axes.

    Attributes:
        values: (S, L, F) each segment's daily values, NaN where unknown (and as end padding).
        state: (S,) state of each segment.
        row_segment: (N,) the segment of each row.
        row_end: (N,) index of each row's last day in its segment.
        attached: (S,) whether the segment starts with stored training days.
        n_days: D, days per window.
    """

    values: np.ndarray
    state: np.ndarray
    row_segment: np.ndarray
    row_end: np.ndarray
    attached: np.ndarray
    n_days: int

    def tails(self, features: list[str], keep: int) -> SeriesTails:
        """The last ``keep`` days of every segment, for prediction-time history."""
        s, length, f = self.values.shape
        out = np.full((s, keep, f), np.nan)
        for k in range(s):
            last = int(self.row_end[self.row_segment == k].max()) + 1
            take = self.values[k, max(last - keep, 0) : last]
            out[k, keep - len(take) :] = take
        return SeriesTails(features, self.state.copy(), out, step_scale(self.values))


def step_scale(values: np.ndarray) -> np.ndarray:
    """(F,) root mean square one-day change of each feature over (S, L, F) daily series."""
    diff = np.diff(values, axis=1).reshape(-1, values.shape[-1])
    scale = np.sqrt(np.nanmean(diff**2, axis=0)) if np.isfinite(diff).any() else None
    if scale is None:
        return np.ones(values.shape[-1])
    return np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)


def build_timeline(
    frame: CovidFrame, tails: SeriesTails | None = None, link: bool = False
) -> Timeline:
    """Chain the rows of ``frame`` and attach each chain to the stored training days if it
    continues them.

    Args:
        frame: a training or test frame.
        tails: the training series' last days (prediction time), or None.
        link: also join chains of a state whose first day is the day after another's last
            (:func:`link_adjacent`; needs ``tails`` for the unit of a one-day change).

    Returns:
        A :class:`Timeline` with one segment per chain (or per linked run of chains).
    """
    d = frame.layout.n_days
    days = day_values(frame)
    chains = chain_rows(frame, days)
    state = frame.state
    survey = _survey_index(frame.layout)
    along = tails is not None and continues_training(chains, days, state, tails)
    if link and tails is not None:
        continues = [
            _attach(_chain_values(c, days), int(state[c[0]]), tails, survey, d, along) is not None
            for c in chains
        ]
        chains = link_adjacent(
            days[:, :, survey], state, chains, tails.step_scale[survey], np.array(continues)
        )
    segments: list[np.ndarray] = []
    seg_state, attached = [], []
    row_segment = np.zeros(len(frame), dtype=np.int64)
    row_end = np.zeros(len(frame), dtype=np.int64)
    for chain in chains:
        vals = _chain_values(chain, days, survey)
        s = int(state[chain[0]])
        offset, prefix = 0, None
        if tails is not None:
            found = _attach(vals, s, tails, survey, d, along)
            if found is not None:
                prefix, offset = found
        if prefix is not None:
            merged = np.full((max(len(prefix), offset + len(vals)), vals.shape[1]), np.nan)
            merged[: len(prefix)] = prefix
            span = merged[offset : offset + len(vals)]
            merged[offset : offset + len(vals)] = np.where(np.isnan(span), vals, span)
            vals = merged
        k = len(segments)
        segments.append(vals)
        seg_state.append(s)
        attached.append(prefix is not None)
        row_segment[chain] = k
        row_end[chain] = offset + _row_starts(chain, days[:, :, survey]) + d - 1
    length = max((len(v) for v in segments), default=0)
    values = np.full((len(segments), length, days.shape[2]), np.nan)
    for k, v in enumerate(segments):
        values[k, : len(v)] = v
    return Timeline(
        values,
        np.array(seg_state, dtype=np.int64),
        row_segment,
        row_end,
        np.array(attached, dtype=bool),
        d,
    )


def _chain_values(
    chain: np.ndarray, days: np.ndarray, survey: list[int] | None = None
) -> np.ndarray:
    """(L, F) the daily values of a chain's rows placed on one day axis."""
    d = days.shape[1]
    survey = list(range(days.shape[2])) if survey is None else survey
    starts = _row_starts(chain, days[:, :, survey])
    vals = np.full((int(starts[-1]) + d, days.shape[2]), np.nan)
    for k, i in zip(starts, chain):  # earliest row first; a later row only fills gaps
        window = vals[k : k + d]
        vals[k : k + d] = np.where(np.isnan(window), days[i], window)
    return vals


def _row_starts(chain: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(len(chain),) first day of each row of a chain (``days``: (N, D, F) survey features):
    one day after the previous row's first when the two overlap, ``D`` days after it when the
    rows were linked end to start."""
    d = days.shape[1]
    starts = np.zeros(len(chain), dtype=np.int64)
    survey_equal = np.array(
        [
            np.array_equal(days[a, 1:], days[b, :-1], equal_nan=True)
            for a, b in zip(chain[:-1], chain[1:])
        ],
        dtype=bool,
    )
    if len(chain) > 1:
        starts[1:] = np.cumsum(np.where(survey_equal, 1, d))
    return starts


def link_adjacent(
    survey: np.ndarray,
    state: np.ndarray,
    chains: list[np.ndarray],
    scale: np.ndarray,
    first: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Join chains of the same state whose first day follows another chain's last day.

    The test file's windows of a state do not overlap, but consecutive ones are adjacent: the
    next window starts the day after. Chain ``a`` is followed by chain ``b`` only when the jump
    from a's last day to b's first day (in units ``scale`` of a typical one-day change) is small
    enough to be one day (at most :data:`ADJACENT_MAX_JUMP`), not zero (the same day repeated:
    an overlap, not a next day), each is the other's best match and no other candidate comes
    close (the best jump at most half the runner-up's), so an ambiguous state is left unlinked;
    a chain that continues the training days (``first``) gets no predecessor; a cycle of links
    is cut at its largest jump.

    Args:
        survey: (N, D, F) the rows' survey features (no tested_positive: the target day's is
            unknown in a test file).
        state: (N,) state of each row.
        chains: overlap chains (:func:`chain_rows`).
        scale: (F,) a typical one-day change of each feature.
        first: (C,) chains that must stay first (they continue the stored training days).

    Returns:
        Linked runs of rows in time order; every row is in exactly one.
    """
    firsts = np.array([survey[c[0], 0] for c in chains])  # (C, F)
    lasts = np.array([survey[c[-1], -1] for c in chains])
    cstate = np.array([state[c[0]] for c in chains])
    succ = np.full(len(chains), -1)
    for s in np.unique(cstate):
        idx = np.flatnonzero(cstate == s)
        if len(idx) < 2:
            continue
        jump = ((firsts[idx][None, :, :] - lasts[idx][:, None, :]) / scale) ** 2
        score = np.nanmean(np.where(np.isfinite(jump), jump, np.nan), axis=-1)  # (a, b)
        score = np.where(np.isfinite(score), score, np.inf)
        score = np.where(score > 0, score, np.inf)  # an identical day is an overlap
        np.fill_diagonal(score, np.inf)
        if first is not None:
            score[:, first[idx]] = np.inf
        best_next, best_prev = score.argmin(axis=1), score.argmin(axis=0)
        for a in range(len(idx)):
            b = best_next[a]
            if best_prev[b] == a and score[a, b] <= ADJACENT_MAX_JUMP and _clear(score, a, b):
                succ[idx[a]] = idx[b]
        _cut_cycles(succ, idx, score)
    return _follow(chains, succ)


def _clear(score: np.ndarray, a: int, b: int) -> bool:
    """Whether the jump a -> b is at most half of every other candidate of a and of b."""
    row = np.delete(score[a], b)
    col = np.delete(score[:, b], a)
    runner_up = min(row.min(initial=np.inf), col.min(initial=np.inf))
    return bool(score[a, b] <= 0.5 * runner_up)


def _cut_cycles(succ: np.ndarray, idx: np.ndarray, score: np.ndarray) -> None:
    """Remove the largest jump of every cycle among the links of chains ``idx``."""
    pos = {int(c): k for k, c in enumerate(idx)}
    for start in idx:
        seen, c = [], int(start)
        while c >= 0 and c not in seen:
            seen.append(c)
            c = int(succ[c])
        if c >= 0 and c == int(start):  # back at the start: a cycle
            worst = max(seen, key=lambda a: score[pos[a], pos[int(succ[a])]])
            succ[worst] = -1


def _follow(chains: list[np.ndarray], succ: np.ndarray) -> list[np.ndarray]:
    has_pred = np.zeros(len(chains), dtype=bool)
    has_pred[succ[succ >= 0]] = True
    runs = []
    for start in np.flatnonzero(~has_pred):
        parts, c = [], int(start)
        while c >= 0:
            parts.append(chains[c])
            c = int(succ[c])
        runs.append(np.concatenate(parts))
    return runs


def _attach(
    chain_vals: np.ndarray,
    state: int,
    tails: SeriesTails,
    survey: list[int],
    d: int,
    continuity: bool = True,
) -> tuple[np.ndarray, int] | None:
    """(tail days without NaN padding, offset of the chain's first day) or None.

    Exact overlap first (the chain's first day is a stored day and every following stored day
    matches), then, where ``continuity`` allows it (:func:`continues_training`), continuity (the
    chain's first day is the day after the stored days end). Only the chain's first row is looked
    at, so attaching never reads a later row.
    """
    first_row = chain_vals[:d]  # (D, F): the first row's days
    for c in np.flatnonzero(tails.state == state):
        tail = _known(tails.values[c])
        for p in range(len(tail)):
            n_common = min(d, len(tail) - p)
            if np.array_equal(tail[p : p + n_common][:, survey], first_row[:n_common][:, survey]):
                return tail, p
    if not continuity:
        return None
    score, best = _jump(first_row[0], state, tails)
    if best < 0 or score > ADJACENT_MAX_JUMP:
        return None
    tail = _known(tails.values[best])
    return tail, len(tail)


def _known(tail: np.ndarray) -> np.ndarray:
    """A stored tail without its NaN front padding."""
    return tail[~np.isnan(tail).all(axis=1)]


def _jump(first_day: np.ndarray, state: int, tails: SeriesTails) -> tuple[float, int]:
    """The smallest mean squared jump (in units of a typical one-day change) from the last
    stored day of one of ``state``'s training chains to ``first_day``, and that chain (-1: none)."""
    best, arg = np.inf, -1
    for c in np.flatnonzero(tails.state == state):
        tail = _known(tails.values[c])
        if not len(tail):
            continue
        jump = (first_day - tail[-1]) / tails.step_scale
        jump = jump[np.isfinite(jump)]
        if len(jump) and float(np.mean(jump**2)) < best:
            best, arg = float(np.mean(jump**2)), int(c)
    return best, arg


def continues_training(
    chains: list[np.ndarray], days: np.ndarray, state: np.ndarray, tails: SeriesTails
) -> bool:
    """Whether the file's windows continue the stored training days (the day after them).

    One chain's continuity proves nothing: the survey features drift slowly, and a window two
    weeks after the training days looks like the next day's in about one state of eight. A file
    that continues the training days, as the held-out later days do, continues them in (nearly)
    every state; so continuity is accepted only when, over the states, the median of each
    state's best jump is at most :data:`FILE_CONTINUES_MAX`, a one-day jump's typical size
    (two weeks away, the median is over ten times larger). Otherwise only exact overlaps attach.
    """
    best: dict[int, float] = {}
    for chain in chains:
        s = int(state[chain[0]])
        score, c = _jump(days[chain[0], 0], s, tails)
        if c >= 0:
            best[s] = min(best.get(s, np.inf), score)
    return bool(best) and float(np.median(list(best.values()))) <= FILE_CONTINUES_MAX


def history_features(
    timeline: Timeline, spec: HistorySpec, tp_index: int, hide_rows: np.ndarray | None = None
) -> pd.DataFrame:
    """The history features of every row (NaN where the days they need are unknown).

    Args:
        timeline: rows on their day axes (:func:`build_timeline`).
        spec: which features.
        tp_index: position of tested_positive among the features.
        hide_rows: rows whose days are treated as unknown (blocked cross-validation hides the
            validation rows' days from the training rows' features); None hides nothing.

    Returns:
        A DataFrame (N, len(spec.columns())) in row order.
    """
    tp = timeline.values[:, :, tp_index].copy()  # (S, L)
    if hide_rows is not None and len(hide_rows):
        d = timeline.n_days
        for back in range(d):
            tp[timeline.row_segment[hide_rows], timeline.row_end[hide_rows] - back] = np.nan
    depth = max(spec.depth, 1)
    idx = timeline.row_end[:, None] - 1 - np.arange(depth)[None, :]  # (N, depth): t-1, t-2, ...
    ok = idx >= 0
    g = np.full(idx.shape, np.nan)  # g[:, j] = tp(t - 1 - j)
    g[ok] = tp[np.broadcast_to(timeline.row_segment[:, None], idx.shape)[ok], idx[ok]]
    cols: dict[str, np.ndarray] = {}
    for k in range(1, spec.lags + 1):
        cols[f"{HISTORY_PREFIX}tp_change_{k}"] = g[:, k - 1] - g[:, k]
    if spec.weeks > 0:
        cols[f"{HISTORY_PREFIX}tp_noise_7"] = noise_estimate(g, spec.weeks)
    lags_back = spec.partial_lags(timeline.n_days)
    if lags_back:
        at = timeline.row_end[:, None] - np.array(lags_back)[None, :]  # (N, K): t-k
        known = at >= 0
        level = np.full(at.shape, np.nan)
        seg = np.broadcast_to(timeline.row_segment[:, None], at.shape)
        level[known] = tp[seg[known], at[known]]
        for j, k in enumerate(lags_back):
            cols[f"{HISTORY_PREFIX}tp_back_{k}"] = g[:, 0] - level[:, j]
    return pd.DataFrame(cols)


def noise_estimate(g: np.ndarray, weeks: int) -> np.ndarray:
    """(N,) estimated noise of p(t-7) from ``g[:, j] = tp(t-1-j)`` (see the module docstring);
    NaN where not even one week is available."""
    n = len(g)
    e = np.full((n, weeks), np.nan)
    for m in range(1, weeks + 1):
        if 7 * m + 3 >= g.shape[1]:
            break
        change = g[:, 7 * m - 1] - g[:, 7 * m]  # tp(s) - tp(s-1), s = t - 7m
        trend = (g[:, 7 * m - 4] - g[:, 7 * m + 3]) / 7  # mean change over s-3..s+3
        e[:, m - 1] = 7 * (change - trend)
    avail = np.cumprod(np.isfinite(e), axis=1).astype(bool)  # consecutive weeks from t-7 back
    m = avail.sum(axis=1)  # (N,)
    j = np.arange(1, weeks + 1)[None, :]
    w = np.where(avail, (m[:, None] + 1 - j) / (m[:, None] + 1), 0.0)
    out = (w * np.nan_to_num(e)).sum(axis=1)
    return np.where(m > 0, out, np.nan)


def with_history(
    frame: CovidFrame,
    spec: HistorySpec,
    timeline: Timeline | None = None,
    tails: SeriesTails | None = None,
    hide_rows: np.ndarray | None = None,
) -> CovidFrame:
    """A copy of ``frame`` whose inputs also hold the history features of ``spec``.

    Args:
        frame: a training or test frame.
        spec: which history features (:class:`HistorySpec`).
        timeline: the rows on their day axes; None builds it from ``frame`` (and ``tails``).
        tails: the stored end of the training series (prediction time), or None.
        hide_rows: rows whose days the features must not read (see :func:`history_features`).

    Returns:
        The frame with ``hist_*`` columns appended (NaN where a row lacks the days they need).
    """
    timeline = build_timeline(frame, tails) if timeline is None else timeline
    tp = frame.layout.features.index(TARGET_FEATURE)
    hist = history_features(timeline, spec, tp, hide_rows)
    base = frame.X[[c for c in frame.X.columns if not is_history_column(c)]]
    return dataclasses.replace(frame, X=pd.concat([base.reset_index(drop=True), hist], axis=1))


def time_order(frame: CovidFrame) -> np.ndarray:
    """(N,) each row's position in its state's sequence of windows (0 = earliest).

    Consecutive windows of a state overlap: days 2..D of one row are days 1..D-1 of the next.
    Rows are chained through that overlap (:func:`chain_rows`, so a shuffled file is ordered too);
    rows that chain to nothing, or files without overlaps, fall back to file order within the
    state. Chains of the same state are placed in the order of their first row in the file.
    """
    order = np.empty(len(frame), dtype=np.int64)
    next_pos: dict[int, int] = {}
    for chain in chain_rows(frame):
        s = int(frame.state[chain[0]])
        pos = next_pos.get(s, 0)
        order[chain] = pos + np.arange(len(chain))
        next_pos[s] = pos + len(chain)
    return order
