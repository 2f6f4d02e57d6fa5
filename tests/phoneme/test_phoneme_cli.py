"""``trainlab phoneme``: featurize -> train -> predict -> evaluate, in-process through ``main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from trainlab.cli import main
from trainlab.phoneme._synth import write_synthetic_timit


def _corpus(root: Path, n: int = 6) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    audio, align = root / "wav", root / "phn"
    audio.mkdir(parents=True)
    align.mkdir(parents=True)
    phones = ["s", "iy", "aa", "m", "sh", "ih"]
    for i in range(n):
        segs, t, lines = [], 0, ["0 1600 h#"]
        t = 1600
        for k in range(6):
            d = int(rng.integers(1200, 2800))
            p = phones[(i + k) % len(phones)]
            lines.append(f"{t} {t + d} {p}")
            segs.append((t, t + d, p))
            t += d
        lines.append(f"{t} {t + 1600} h#")
        t += 1600
        x = 300 * rng.standard_normal(t)
        for a, b, p in segs:  # each phone a different tone, so the classes are learnable
            f = 200 + 400 * phones.index(p)
            x[a:b] += 8000 * np.sin(2 * np.pi * f * np.arange(b - a) / 16000)
        wavfile.write(audio / f"utt{i}.wav", 16000, x.astype(np.int16))
        (align / f"utt{i}.PHN").write_text("\n".join(lines) + "\n")
    return audio, align


@pytest.mark.slow
def test_featurize_train_predict_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    audio, align = _corpus(tmp_path)
    data = tmp_path / "data"
    assert main(["phoneme", "featurize", "--audio", str(audio), "--align", str(align),
                 "--out", str(data), "--workers", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "6 utterances" in out and "train_11.npy" in out
    assert main(["phoneme", "featurize", "--audio", str(audio), "--out", str(data), "--test",
                 "--workers", "1"]) == 0  # fmt: skip
    # the training files stay beside the test files
    assert sorted(p.name for p in data.iterdir()) == [
        "config.json", "manifest.json", "test_11.npy", "test_utterances.csv", "train_11.npy",
        "train_label_11.npy", "train_utterances.csv",
    ]  # fmt: skip

    cfg = tmp_path / "tiny.toml"
    cfg.write_text("hidden = [32]\nbatch_size = 64\nlr = 0.003\nval_ratio = 0.34\n")
    run = tmp_path / "run"
    assert main(["phoneme", "train", "--data", str(data), "--out", str(run), "--model", "mlp",
                 "--config", str(cfg), "--epochs", "2", "--seed", "1", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "validation accuracy" in out and "submission" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_utterances"] == 2 and metrics["epochs_run"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["hidden"] == [32] and config["seed"] == 1 and config["epochs"] == 2
    n_test = np.load(data / "test_11.npy", mmap_mode="r").shape[0]
    assert len((run / "submission.csv").read_text().splitlines()) == n_test + 1

    pred = tmp_path / "pred.csv"
    assert main(["phoneme", "predict", "--model", str(run), "--input", str(data / "test_11.npy"),
                 "--output", str(pred), "--smoothing", "median"]) == 0  # fmt: skip
    lines = pred.read_text().splitlines()
    assert lines[0] == "Id,Class" and len(lines) == n_test + 1
    assert main(["phoneme", "evaluate", "--model", str(run / "model"), "--data", str(data)]) == 0
    assert "Viterbi" in capsys.readouterr().out


def test_presets_listed(capsys: pytest.CaptureFixture[str]):
    assert main(["phoneme", "presets"]) == 0
    out = capsys.readouterr().out
    assert "sample:" in out and "1024, 512, 128" in out and "rnn:" in out
    default = out.split("crnn:", 1)[1].splitlines()[1]  # the default's settings line
    assert "rnn_stride=2" in default and "members=2" in default


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert (
        main(["phoneme", "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
        == 1
    )
    err = capsys.readouterr().err
    assert (
        err.startswith("trainlab: error:") and "nope" in err and len(err.strip().splitlines()) == 1
    )
    assert "Traceback" not in err
    data = write_synthetic_timit(tmp_path / "d", 300, 0)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 5), np.float32))
    run = tmp_path / "r"
    cfg = tmp_path / "c.toml"
    cfg.write_text("hidden = [8]\nepochs = 1\n")
    assert main(["phoneme", "train", "--data", str(data), "--out", str(run), "--config", str(cfg),
                 "--quiet"]) == 0  # fmt: skip
    assert not (run / "submission.csv").exists()  # no test_11.npy, no submission
    capsys.readouterr()
    assert main(["phoneme", "predict", "--model", str(run), "--input", str(bad),
                 "--output", str(tmp_path / "p.csv")]) == 1  # fmt: skip
    assert "shape (N, 429)" in capsys.readouterr().err
    assert (
        main(["phoneme", "featurize", "--audio", str(tmp_path), "--out", str(tmp_path / "f")]) == 1
    )
    assert "no .wav files" in capsys.readouterr().err
    assert main(["phoneme", "train", "--data", str(data), "--out", str(run), "--model", "cnn"]) == 2
    cfg.write_text("lr = 'fast'\n")
    assert (
        main(["phoneme", "train", "--data", str(data), "--out", str(run), "--config", str(cfg)])
        == 1
    )
    assert "lr" in capsys.readouterr().err
