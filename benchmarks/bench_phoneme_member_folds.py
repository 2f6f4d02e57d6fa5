"""Member folds against a shared validation split: the default ensemble both ways, on several splits.

For each seed (each its own three-way split of the utterances), trains the default preset twice:
with every member validating on all the validation utterances and training on the rest
(``member_folds = false``), and as the default does, each member validating on its own fold and
training on the other (``member_folds = true``). Both runs' members are then scored on the same
folds, member ``k`` on fold ``k`` (for the first run, too, a fold no member trained on): the
validation comparison that chooses between them. Each run's untouched hold-out accuracy (the
ensemble, with the smoothing its validation chose) is reported beside it, not used.

A run folder already holding a complete run of the same settings is scored as it is (a run with a
given seed is reproducible), so an interrupted benchmark continues where it stopped.

    python benchmarks/bench_phoneme_member_folds.py --data FEATURES_DIR --out OUT [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config import from_dict
from trainlab.phoneme import load_model, resolve_config, train_phoneme
from trainlab.phoneme.config import PhonemeConfig
from trainlab.phoneme.files import load_timit
from trainlab.phoneme.infer import log_posteriors
from trainlab.phoneme.models import Members
from trainlab.phoneme.split import prepare_data, validation_folds


def _complete(run: Path, cfg: PhonemeConfig) -> bool:
    """Whether ``run`` holds a finished run of exactly ``cfg``."""
    if not (run / "metrics.json").is_file() or not (run / "config.json").is_file():
        return False
    saved = json.loads((run / "config.json").read_text())
    saved.pop("data_files", None)
    return from_dict(PhonemeConfig, saved) == cfg


def _accuracy(net: Any, cfg: PhonemeConfig, split: Any, which: np.ndarray) -> tuple[int, int]:
    """(correct frames, frames) of ``net`` on the utterances ``which``, unsmoothed."""
    lp = log_posteriors(net, split.x, split.utts, which, sequence=True, rnn_frames=cfg.rnn_frames)
    return int((lp.argmax(1) == split.y[split.utts.rows(which)]).sum()), len(lp)


def score(run: Path, data: str) -> dict[str, Any]:
    """Out-of-fold validation accuracy of a run's members and their hold-out accuracy."""
    net, info = load_model(run)
    cfg: PhonemeConfig = info["config"]
    assert isinstance(net, Members)
    split = prepare_data(load_timit(data), cfg.val_ratio, cfg.holdout_ratio, cfg.seed)
    folds = validation_folds(split, len(net.members))
    assert folds is not None
    right = frames = 0
    for member, fold in zip(net.members, folds):
        r, n = _accuracy(member, cfg, split, fold)
        right, frames = right + r, frames + n
    hold = [_accuracy(m, cfg, split, split.hold_u) for m in net.members]
    m = json.loads((run / "metrics.json").read_text())
    return {
        "val_out_of_fold": right / frames,
        "untouched": m["untouched_accuracy"],
        "untouched_raw": m["untouched_accuracy_raw"],
        "untouched_members_raw": [r / n for r, n in hold],
        "seconds": m["seconds"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="featurized folder (train_11.npy & co.)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        for folds in (False, True):
            cfg = resolve_config(seed=seed, member_folds=folds)
            run = out / f"seed{seed}_{'folds' if folds else 'shared'}"
            if not _complete(run, cfg):
                train_phoneme(args.data, run, cfg, quiet=True)
            rows.append({"seed": seed, "member_folds": folds, **score(run, args.data)})
    (out / "member_folds.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "| seed | member folds | val, members out of fold | untouched (raw) | untouched, "
        "each member raw |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        each = " / ".join(f"{a:.4f}" for a in r["untouched_members_raw"])
        lines.append(
            f"| {r['seed']} | {'yes' if r['member_folds'] else 'no'} | {r['val_out_of_fold']:.4f} "
            f"| {r['untouched']:.4f} ({r['untouched_raw']:.4f}) | {each} |"
        )
    for folds in (False, True):
        picked = [r for r in rows if r["member_folds"] == folds]
        lines.append(
            f"\nmember folds {'yes' if folds else 'no'}, mean of {len(picked)} splits: validation "
            f"{np.mean([r['val_out_of_fold'] for r in picked]):.4f}, untouched "
            f"{np.mean([r['untouched'] for r in picked]):.4f}"
        )
    table = "\n".join(lines)
    (out / "member_folds.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
