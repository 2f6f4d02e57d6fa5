"""The featurizer: Kaldi MFCC + deltas, CMVN, 11-frame splicing, labels at frame centres, the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from trainlab.errors import DataError
from trainlab.phoneme._audio import read_audio
from trainlab.phoneme.featurize import (
    FeaturizeConfig,
    add_deltas,
    cmvn,
    featurize,
    mfcc,
    splice,
    utterance_features,
)
from trainlab.phoneme.files import (
    PHONE_TO_INDEX,
    Utterances,
    centre_frames,
    load_timit,
    recover_utterances,
)

knf = pytest.importorskip("kaldi_native_fbank")


def _speechy(seconds: float, sr: int, seed: int) -> np.ndarray:
    """A few tones and noise bursts, int16."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k, f in enumerate(rng.uniform(150, 3000, size=5)):
        env = (t >= k * seconds / 5) & (t < (k + 1) * seconds / 5)
        x += env * np.sin(2 * np.pi * f * t)
    x += 0.05 * rng.standard_normal(len(t))
    return (x / np.abs(x).max() * 12000).astype(np.int16)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    audio, align = tmp_path / "audio", tmp_path / "align"
    (audio / "dr1").mkdir(parents=True)
    (align / "dr1").mkdir(parents=True)
    wavfile.write(audio / "dr1" / "u1.wav", 16000, _speechy(1.0, 16000, 1))
    (align / "dr1" / "u1.PHN").write_text("0 4000 h#\n4000 8000 s\n8000 12000 iy\n12000 16000 h#\n")
    wavfile.write(audio / "dr1" / "u2.WAV", 16000, _speechy(0.6, 16000, 2))
    (align / "u2.phn").write_text("0 3000 h#\n3000 4000 q\n4000 9600 aa\n")
    wavfile.write(audio / "u3.wav", 22050, _speechy(0.8, 22050, 3))
    (align / "u3.TextGrid").write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n0.8\n<exists>\n1\n'
        '"IntervalTier"\n"phones"\n0\n0.8\n3\n0\n0.3\n""\n0.3\n0.6\n"M"\n0.6\n0.8\n"AH0"\n'
    )
    wavfile.write(audio / "orphan.wav", 16000, _speechy(0.5, 16000, 4))
    (align / "lonely.PHN").write_text("0 100 h#\n")
    return audio, align


def _regression_deltas(feats: np.ndarray, order: int, window: int) -> np.ndarray:
    """Kaldi's add-deltas written out: ``w1[j] = j / (2 sum_k k^2)``, ``w_i = w_{i-1} * w1``."""
    w1 = np.arange(-window, window + 1) / (2 * sum(k * k for k in range(1, window + 1)))
    ws = [np.ones(1)]
    for _ in range(order):
        ws.append(np.convolve(ws[-1], w1))
    t, x = len(feats), feats.astype(np.float64)
    blocks = [x]
    for w in ws[1:]:
        half = len(w) // 2
        idx = np.clip(np.arange(t)[:, None] + np.arange(-half, half + 1)[None, :], 0, t - 1)
        blocks.append(np.einsum("tld,l->td", x[idx], w))  # edge frames repeated
    return np.concatenate(blocks, axis=1)


@pytest.mark.parametrize("frames", [1, 2, 5, 60])
@pytest.mark.parametrize(("order", "window"), [(2, 2), (1, 3)])
def test_deltas_equal_kaldis_regression_formula(frames: int, order: int, window: int):
    feats = (30 * np.random.default_rng(frames).standard_normal((frames, 13))).astype(np.float32)
    ours = add_deltas(feats, order=order, window=window)
    assert ours.shape == (frames, 13 * (order + 1)) and ours.dtype == np.float32
    ref = _regression_deltas(feats, order, window)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)


def test_deltas_of_a_ramp_are_its_slope():
    ramp = np.arange(30, dtype=np.float32)[:, None] * np.array([[1.0, -2.0, 0.5]], np.float32)
    d = add_deltas(ramp, order=2, window=2)
    np.testing.assert_array_equal(d[:, :3], ramp)
    np.testing.assert_allclose(d[2:-2, 3:6], np.broadcast_to([1.0, -2.0, 0.5], (26, 3)), atol=1e-5)
    np.testing.assert_allclose(d[4:-4, 6:], 0.0, atol=1e-5)  # no curvature away from the edges


def test_splice_repeats_edge_frames_and_rows_overlap():
    f = np.arange(4 * 2, dtype=np.float32).reshape(4, 2)  # frames 0..3, 2 features
    rows = splice(f, 11)
    assert rows.shape == (4, 22)
    frames_of_row0 = rows[0].reshape(11, 2)[:, 0] / 2
    np.testing.assert_array_equal(frames_of_row0, [0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(rows[1:, :20], rows[:-1, 2:])  # the overlap recovery relies on
    with pytest.raises(ValueError):
        splice(f, 4)


def test_cmvn_normalises_each_column():
    x = np.random.default_rng(0).normal(5, 3, size=(200, 39)).astype(np.float32)
    y = cmvn(x)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-4)
    assert np.isfinite(cmvn(np.ones((5, 3), np.float32))).all()  # constant column


def test_mfcc_matches_kaldi_native_fbank_without_dither():
    x = _speechy(0.5, 16000, 0).astype(np.float32)
    ours = mfcc(x)
    assert ours.shape == (1 + (len(x) - 400) // 160, 13)
    opts = knf.MfccOptions()
    opts.frame_opts.dither = 0.0
    ref = knf.OnlineMfcc(opts)
    ref.accept_waveform(16000, x)
    ref.input_finished()
    np.testing.assert_array_equal(ours, np.stack([ref.get_frame(i) for i in range(len(ours))]))
    np.testing.assert_array_equal(ours, mfcc(x))  # reproducible
    assert mfcc(x[:300]).shape == (0, 13)


def test_resampling_to_16k(tmp_path: Path):
    wavfile.write(tmp_path / "a.wav", 8000, _speechy(0.5, 8000, 0))
    assert len(read_audio(tmp_path / "a.wav")) == 8000
    wavfile.write(tmp_path / "f.wav", 16000, np.zeros(1600, np.float32) + 0.5)
    np.testing.assert_allclose(read_audio(tmp_path / "f.wav"), 16384.0)  # float wav -> int16 scale
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(DataError, match="bad.wav"):
        read_audio(tmp_path / "bad.wav")


def test_featurize_training_layout(corpus: tuple[Path, Path], tmp_path: Path):
    audio, align = corpus
    out = tmp_path / "out"
    rep = featurize(audio, out, align, config=FeaturizeConfig(workers=1))
    assert rep.missing_alignment == ["orphan"] and rep.missing_audio == ["lonely"]
    assert rep.utterances == 3
    n1, n2 = 1 + (16000 - 400) // 160, 1 + (9600 - 400) // 160
    n3 = 1 + (int(0.8 * 16000) - 400) // 160
    q_frames = sum(1 for t in range(n2) if 3000 <= 160 * t + 200 < 4000)
    assert rep.dropped_frames == q_frames > 0
    d = load_timit(out)
    assert d.train_x.shape == (n1 + n2 - q_frames + n3, 429) == (rep.frames, 429)
    index = Utterances.from_csv(out / "train_utterances.csv", rep.frames)
    assert index.ids == ["u1", "u2", "u3"]
    assert index.lengths.tolist() == [n1, n2 - q_frames, n3]
    labels = np.load(out / "train_label_11.npy")
    assert labels.dtype == np.dtype("<U2")
    # u1: the phone under each frame centre
    y1 = d.train_y[:n1]
    for t in (0, 23, 24, 48, 49, 73, 74, n1 - 1):
        c = 160 * t + 200
        want = "sil" if c < 4000 or c >= 12000 else "s" if c < 8000 else "iy"
        assert y1[t] == PHONE_TO_INDEX[want], t
    u3 = d.train_y[n1 + n2 - q_frames :]
    assert set(u3.tolist()) == {PHONE_TO_INDEX[p] for p in ("sil", "m", "ah")}
    # the rows are the spliced per-utterance features; q frames are gone but kept as context
    feats1 = utterance_features(read_audio(audio / "dr1" / "u1.wav"))
    np.testing.assert_allclose(centre_frames(d.train_x[:n1]), feats1, atol=1e-6)
    np.testing.assert_allclose(feats1.mean(0), 0, atol=1e-4)
    # recovery sees the q gap as an extra boundary; the written index is authoritative
    rec = recover_utterances(d.train_x)
    assert set(index.starts.tolist()) <= set(rec.starts.tolist())
    assert len(rec) == len(index) + 1


def test_featurize_test_mode_keeps_every_frame(corpus: tuple[Path, Path], tmp_path: Path):
    audio, _ = corpus
    out = tmp_path / "t"
    rep = featurize(audio, out, None, test=True, config=FeaturizeConfig(workers=1))
    assert rep.utterances == 4 and rep.dropped_frames == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "manifest.json",
        "test_11.npy",
        "test_utterances.csv",
    ]
    d = load_timit(out, require_train=False)
    idx = d.test_utterances()
    rec = recover_utterances(d.test_x)
    np.testing.assert_array_equal(rec.starts, idx.starts)


def test_two_workers_give_identical_files(corpus: tuple[Path, Path], tmp_path: Path):
    audio, align = corpus
    featurize(audio, tmp_path / "a", align, config=FeaturizeConfig(workers=1))
    featurize(audio, tmp_path / "b", align, config=FeaturizeConfig(workers=2))
    for name in ("train_11.npy", "train_label_11.npy", "train_utterances.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_featurize_errors(corpus: tuple[Path, Path], tmp_path: Path):
    audio, align = corpus
    only = tmp_path / "only"
    only.mkdir()
    (only / "zzz.PHN").write_text("0 10 h#\n")
    with pytest.raises(DataError, match="none of the 1 alignments matches"):
        featurize(audio, tmp_path / "o", only)
    with pytest.raises(DataError, match="no .wav files"):
        featurize(align, tmp_path / "o", align)
    with pytest.raises(DataError, match="need alignments"):
        featurize(audio, tmp_path / "o", None)
    with pytest.raises(DataError, match="alignment folder not found"):
        featurize(audio, tmp_path / "o", tmp_path / "missing")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_featurize_real_ljspeech_clips(shared_data: Path, tmp_path: Path):
    root = shared_data / "ljspeech_mfa"
    if not (root / "LJSpeech-1.1" / "wavs").is_dir():
        pytest.skip(f"ljspeech_mfa not found at {root}")
    audio, align = tmp_path / "wavs", tmp_path / "tg"
    audio.mkdir()
    align.mkdir()
    ids = ["LJ001-0002", "LJ002-0010"]
    for u in ids:  # links, so the real data is never copied
        (audio / f"{u}.wav").symlink_to(root / "LJSpeech-1.1" / "wavs" / f"{u}.wav")
        (align / f"{u}.TextGrid").symlink_to(root / "TextGrid" / "LJSpeech" / f"{u}.TextGrid")
    rep = featurize(audio, tmp_path / "out", align, config=FeaturizeConfig(workers=1))
    assert rep.utterances == 2 and rep.dropped_frames == 0 and not rep.short_alignment
    d = load_timit(tmp_path / "out")
    sr, wav = wavfile.read(audio / f"{ids[0]}.wav")
    n16 = len(read_audio(audio / f"{ids[0]}.wav"))
    assert sr == 22050 and abs(n16 - len(wav) * 16000 / 22050) < 2
    assert d.train_utterances().lengths[0] == 1 + (n16 - 400) // 160
    assert np.isfinite(d.train_x).all()
    assert len(np.unique(d.train_y)) > 15
