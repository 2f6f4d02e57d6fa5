"""Shuffled rows put back into utterances from their 11-frame overlaps (MLE-bench's layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.cli import main
from trainlab.phoneme import run as phoneme_run
from trainlab.phoneme.featurize import FeaturizeConfig, featurize
from trainlab.phoneme.files import load_timit
from trainlab.phoneme.layout import ChainedRows, chain_rows, is_shuffled


def _shuffled(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(len(x))
    return np.ascontiguousarray(np.asarray(x)[perm]), perm


def _check_chains(chains, perm: np.ndarray, true_lengths: np.ndarray) -> None:
    original = perm[chains.order]  # each chain must be a run of consecutive original rows
    for s, n in zip(chains.utts.starts.tolist(), chains.utts.lengths.tolist()):
        assert (np.diff(original[s : s + n]) == 1).all()
    np.testing.assert_array_equal(np.sort(chains.utts.lengths), np.sort(true_lengths))


def test_chains_rebuild_the_utterances_across_two_files(data: Path):
    d = load_timit(data)
    utts = d.train_utterances()
    xs, perm = _shuffled(d.train_x)
    assert is_shuffled(xs) and not is_shuffled(d.train_x)
    cut = 2100  # the rows of one utterance fall in both files
    chains = chain_rows([xs[:cut], xs[cut:]])
    assert chains.singletons == 0 and len(chains.utts) == len(utts)
    _check_chains(chains, perm, utts.lengths)
    rows = ChainedRows([xs[:cut], xs[cut:]], chains.order)
    np.testing.assert_array_equal(rows[5:9], np.asarray(d.train_x)[perm[chains.order[5:9]]])
    np.testing.assert_array_equal(rows[3:4, 39:78], xs[[chains.order[3]], 39:78])
    np.testing.assert_array_equal(rows[np.array([7, 2])], xs[chains.order[[7, 2]]])


def test_ambiguous_overlaps_are_not_linked(data: Path):
    d = load_timit(data)
    n = int(d.train_utterances().lengths[0])
    x = np.asarray(d.train_x)[:n]  # the first utterance
    dup = np.concatenate([x, x[10:11]])  # a second copy of row 10: its links are ambiguous
    chains = chain_rows([dup])
    assert chains.utts.num_rows == n + 1
    # 9 -> (10 twice) and (10 twice) -> 11 stay unlinked: rows 0-9, 10, its copy, 11-end
    assert chains.singletons == 2 and sorted(chains.utts.lengths.tolist()) == [1, 1, 10, n - 11]


def test_prepare_data_and_prediction_on_a_shuffled_layout(data: Path, tmp_path: Path):
    from trainlab.phoneme.split import prediction_rows, prepare_data

    d = load_timit(data)
    xs, perm = _shuffled(d.train_x, seed=1)
    ys = d.train_y[perm]
    folder = tmp_path / "timit_11" / "timit_11"
    folder.mkdir(parents=True)
    np.save(folder / "train_11.npy", xs[:2400])
    np.save(folder / "train_label_11.npy", ys[:2400].astype("<U2"))
    np.save(folder / "test_11.npy", xs[2400:])
    ds = load_timit(tmp_path)  # found under timit_11/timit_11/
    run = prepare_data(ds, 0.2, 0.1, seed=0)
    assert run.layout == "shuffled" and run.singletons == 0 and run.test_rows is not None
    np.testing.assert_array_equal(run.x[run.test_rows[:50]], xs[2400:2450])
    assert (run.y[run.test_rows] == -100).all() and (run.y != -100).sum() == 2400
    picked = [run.labelled_rows(u) for u in (run.train_u, run.val_u, run.hold_u)]
    assert sum(map(len, picked)) == 2400 and len(np.unique(np.concatenate(picked))) == 2400
    rows, utts, where = prediction_rows(folder / "test_11.npy", ds.test_x)
    assert where is not None and len(where) == 600 and utts.num_rows == 3000  # with train_11.npy
    np.testing.assert_array_equal(rows[where[:20]], xs[2400:2420])


@pytest.mark.slow
@pytest.mark.parametrize("group", [None, 3])  # None: the default; 3: many groups of utterances
def test_real_clips_shuffled_train_and_predict(
    shared_data: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, group: int | None
):
    if group is not None:
        monkeypatch.setattr(phoneme_run, "CHAINED_GROUP", group)
    root = shared_data / "ljspeech_mfa"
    if not (root / "LJSpeech-1.1" / "wavs").is_dir():
        pytest.skip(f"ljspeech_mfa not found at {root}")
    audio, align = tmp_path / "wavs", tmp_path / "tg"
    audio.mkdir()
    align.mkdir()
    ids = [f"LJ001-{k:04d}" for k in range(1, 13)]
    for u in ids:  # links, so the real data is never copied
        (audio / f"{u}.wav").symlink_to(root / "LJSpeech-1.1" / "wavs" / f"{u}.wav")
        (align / f"{u}.TextGrid").symlink_to(root / "TextGrid" / "LJSpeech" / f"{u}.TextGrid")
    featurize(audio, tmp_path / "feat", align, config=FeaturizeConfig(workers=1))
    d = load_timit(tmp_path / "feat")
    xs, perm = _shuffled(d.train_x, seed=2)
    cut = int(0.8 * len(xs))
    _check_chains(chain_rows([xs[:cut], xs[cut:]]), perm, d.train_utterances().lengths)
    folder = tmp_path / "mle" / "timit_11" / "timit_11"
    folder.mkdir(parents=True)
    np.save(folder / "train_11.npy", xs[:cut])
    np.save(folder / "train_label_11.npy", d.train_y[perm][:cut].astype("<U2"))
    np.save(folder / "test_11.npy", xs[cut:])
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("rnn_hidden = 32\nrnn_proj = 32\nrnn_layers = 1\nconv_layers = 1\nepochs = 2\n")
    out = tmp_path / "run"
    assert main(["phoneme", "train", "--data", str(tmp_path / "mle"), "--out", str(out),
                 "--config", str(cfg), "--format", "mlebench", "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "0 row(s) chain with no other" in printed and "untouched hold-out accuracy" in printed
    sub = (out / "submission.csv").read_text().splitlines()
    assert sub[0] == "Id,ClassId" and len(sub) == len(xs) - cut + 1
    assert main(["phoneme", "predict", "--model", str(out), "--input", str(folder / "test_11.npy"),
                 "--output", str(tmp_path / "p.csv"), "--id-column", "row"]) == 0  # fmt: skip
    pred = (tmp_path / "p.csv").read_text().splitlines()
    assert pred[0] == "row,Class" and [r.split(",")[1] for r in pred[1:]] == [
        r.split(",")[1] for r in sub[1:]
    ]
