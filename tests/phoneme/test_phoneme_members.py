"""Ensembles: each member a run of its own, alike whether trained in worker processes or in turn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.phoneme import load_model, resolve_config, train_phoneme
from trainlab.phoneme.files import Utterances, load_timit
from trainlab.phoneme.fitting import member_config, parallel_workers
from trainlab.phoneme.infer import log_posteriors
from trainlab.phoneme.split import RunData, member_split, prepare_data, validation_folds

TINY_TCN = {"rnn_proj": 16, "conv_layers": 2, "conv_dilations": [1, 2], "epochs": 2,
            "utterances_per_batch": 8, "lr": 1e-2}  # fmt: skip


def test_parallel_workers_split_the_cores_on_cpu_only():
    cfg = resolve_config("tcn", None, members=3, threads=2)
    assert parallel_workers(cfg, torch.device("cpu")) == (3, 1)  # all at once, a core shared
    assert parallel_workers(resolve_config("tcn", None, members=9, threads=2),
                            torch.device("cpu")) == (8, 1)  # fmt: skip
    assert parallel_workers(resolve_config("tcn", None, members=2, threads=4),
                            torch.device("cpu")) == (2, 2)  # fmt: skip
    assert parallel_workers(resolve_config("tcn", None, members=2, threads=1),
                            torch.device("cpu")) == (1, 1)  # fmt: skip
    assert parallel_workers(cfg, torch.device("cuda")) == (1, 2)
    assert parallel_workers(resolve_config("tcn", None, threads=2), torch.device("cpu")) == (1, 2)
    assert member_config(cfg, 2).seed == cfg.seed + 2 and member_config(cfg, 2).members == 1


def _weights(run: Path) -> dict[str, torch.Tensor]:
    net, _ = load_model(run)
    return net.state_dict()


def test_members_in_processes_equal_members_in_turn_and_the_single_runs(data: Path, tmp_path: Path):
    both = resolve_config("tcn", None, **TINY_TCN, members=2, threads=2)  # 2 processes
    in_turn = resolve_config("tcn", None, **TINY_TCN, members=2, threads=1)  # this process
    m = train_phoneme(data, tmp_path / "par", both, quiet=True)
    train_phoneme(data, tmp_path / "seq", in_turn, quiet=True)
    par, seq = _weights(tmp_path / "par"), _weights(tmp_path / "seq")
    torch.testing.assert_close(par, seq, rtol=0, atol=0)

    # member 1 is the single network of the same seed; member 2 starts from other weights
    alone = resolve_config("tcn", None, **TINY_TCN, threads=1)
    train_phoneme(data, tmp_path / "one", alone, quiet=True)
    for name, w in _weights(tmp_path / "one").items():
        torch.testing.assert_close(par[f"members.0.{name}"], w, rtol=0, atol=0)
        assert not torch.equal(par[f"members.1.{name}"], w) or "bn" in name or w.numel() == 1

    saved = json.loads((tmp_path / "par" / "metrics.json").read_text())
    assert saved["validation"] == "shared" and "validation_note" not in saved
    assert [mb["seed"] for mb in saved["members"]] == [0, 1]
    assert saved["members"] == m["members"]
    for k in (1, 2):
        assert (tmp_path / "par" / "training" / f"member{k}" / "history.csv").is_file()
    assert (tmp_path / "par" / "history.csv").is_file()


def _run_data(lengths: list[int], val_u: list[int]) -> RunData:
    lens = np.asarray(lengths, dtype=np.int64)
    utts = Utterances([f"u{i}" for i in range(len(lens))], np.cumsum(lens) - lens, lens)
    val = np.asarray(val_u, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(lens)), val)
    return RunData(np.zeros((int(lens.sum()), 1)), np.zeros(int(lens.sum()), dtype=np.int64),
                   utts, rest[:-1], val, rest[-1:])  # fmt: skip


def test_validation_folds_deal_the_validation_utterances_into_balanced_folds():
    data = _run_data([50, 10, 40, 30, 20, 60, 5], [0, 2, 3, 4, 5])
    folds = validation_folds(data, 2)
    assert folds is not None
    # longest first to the fold with fewer frames: 60 A, 50 B, 40 B (90), 30 A (90), 20 A (tie)
    assert [f.tolist() for f in folds] == [[3, 4, 5], [0, 2]]
    assert validation_folds(data, 6) is None and validation_folds(data, 1) is None
    for k in range(2):
        mine = member_split(data, k, 2)
        assert mine.val_u.tolist() == folds[k].tolist()
        assert sorted([*mine.train_u, *mine.val_u]) == sorted([*data.train_u, *data.val_u])
        assert mine.hold_u.tolist() == data.hold_u.tolist()
    assert member_split(data, 0, 6) is data


def test_member_folds_validate_each_fold_with_the_member_that_did_not_train_on_it(
    data: Path, tmp_path: Path
):
    cfg = resolve_config("tcn", None, **TINY_TCN, members=2, threads=2, member_folds=True,
                         smoothing="none")  # fmt: skip
    m = train_phoneme(data, tmp_path / "folds", cfg, quiet=True)
    assert m["validation"] == "out of fold"
    split = prepare_data(load_timit(data), cfg.val_ratio, cfg.holdout_ratio, cfg.seed)
    folds = validation_folds(split, 2)
    assert folds is not None
    net, _ = load_model(tmp_path / "folds")
    hits = frames = 0
    for k, (member, fold) in enumerate(zip(net.members, folds)):
        lp = log_posteriors(member, split.x, split.utts, fold, sequence=True,
                            rnn_frames=cfg.rnn_frames)  # fmt: skip
        right = int((lp.argmax(1) == split.y[split.utts.rows(fold)]).sum())
        # each worker validated on the fold the parent assigns it (best weights kept)
        assert m["members"][k]["best_val_acc"] == pytest.approx(right / len(lp), abs=1e-6)
        assert m["members"][k]["val_utterances"] == len(fold)
        assert m["members"][k]["train_utterances"] == len(split.train_u) + len(folds[1 - k])
        hits, frames = hits + right, frames + len(lp)
    assert m["val_accuracy"] == pytest.approx(hits / frames, abs=1e-6)
