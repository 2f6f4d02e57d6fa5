"""Ensembles: each member a run of its own, alike whether trained in worker processes or in turn."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trainlab.phoneme import load_model, resolve_config, train_phoneme
from trainlab.phoneme.fitting import member_config, parallel_workers

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
    assert [mb["seed"] for mb in saved["members"]] == [0, 1]
    assert saved["members"] == m["members"]
    for k in (1, 2):
        assert (tmp_path / "par" / "training" / f"member{k}" / "history.csv").is_file()
    assert (tmp_path / "par" / "history.csv").is_file()
