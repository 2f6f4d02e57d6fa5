"""A corpus of bad inputs for every ``trainlab phoneme`` command, generated from small data.

Each case builds one damaged input (wavs written with the stdlib ``wave`` module, hand-written
TextGrids and ``.PHN`` files, small synthetic feature arrays, a tampered saved model, an unusable
output place) and runs the command through :func:`trainlab.cli.main`. Every case must exit with
the expected code, print exactly one line on stderr that names the file at fault, print no
traceback, and leave the files already in the output place as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trainlab.cli import main
from trainlab.phoneme import resolve_config, train_phoneme
from trainlab.phoneme._synth import write_synthetic_timit
from trainlab.runs import staging_dir

SR = 16000
PHONES = ["sil", "s", "iy", "aa", "m", "sh"]


def _write_wav(path: Path, seconds: float = 0.6, rate: int = SR, seed: int = 0) -> Path:
    x = (3000 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return path


def _float_wav(path: Path, samples: np.ndarray) -> Path:
    """A 32-bit IEEE-float wav (format 3), which the stdlib cannot write."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, SR, SR * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data)
    return path


def _textgrid(intervals: list[tuple[float, float, str]], tier: str = "phones") -> str:
    xmax = intervals[-1][1]
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
             f"xmax = {xmax}", "tiers? <exists>", "size = 1", "item []:", "    item [1]:",
             '        class = "IntervalTier"', f'        name = "{tier}"', "        xmin = 0",
             f"        xmax = {xmax}", f"        intervals: size = {len(intervals)}"]  # fmt: skip
    for k, (a, b, text) in enumerate(intervals, start=1):
        lines += [f"        intervals [{k}]:", f"            xmin = {a}", f"            xmax = {b}",
                  f'            text = "{text}"']  # fmt: skip
    return "\n".join(lines) + "\n"


def _segments(seconds: float = 0.6) -> list[tuple[float, float, str]]:
    step = seconds / len(PHONES)
    return [(round(k * step, 4), round((k + 1) * step, 4), p) for k, p in enumerate(PHONES)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good inputs to damage: a wav corpus with alignments, a data folder and a trained run."""
    root = tmp_path_factory.mktemp("bad")
    audio, align = root / "wav", root / "align"
    audio.mkdir()
    align.mkdir()
    for i in range(3):
        _write_wav(audio / f"u{i}.wav", seed=i)
        (align / f"u{i}.TextGrid").write_text(_textgrid(_segments()))
    data = write_synthetic_timit(root / "data", 600, 120, mean_length=30)
    run = root / "run"
    cfg = resolve_config("mlp", None, hidden=[16], epochs=1, batch_size=128)
    train_phoneme(data, run, cfg, quiet=True)
    config = root / "tiny.toml"
    config.write_text("hidden = [16]\nepochs = 1\nbatch_size = 128\n")
    return {"root": root, "audio": audio, "align": align, "data": data, "run": run,
            "config": config}  # fmt: skip


# --- the cases: each damages one input and returns (argv, the path the message must name) -------

Case = Callable[[dict[str, Path], Path], tuple[list[str], Path]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def _audio_copy(c: dict[str, Path], tmp: Path) -> tuple[Path, Path]:
    audio, align = tmp / "wav", tmp / "align"
    shutil.copytree(c["audio"], audio)
    shutil.copytree(c["align"], align)
    return audio, align


def _featurize(audio: Path, align: Path | None, tmp: Path, *extra: str) -> list[str]:
    args = ["phoneme", "featurize", "--audio", str(audio), "--out", str(tmp / "out")]
    return args + (["--align", str(align)] if align else []) + ["--workers", "1", *extra]


@case
def featurize_truncated_wav(c, tmp):
    audio, align = _audio_copy(c, tmp)
    raw = (audio / "u1.wav").read_bytes()
    (audio / "u1.wav").write_bytes(raw[: len(raw) // 2])
    return _featurize(audio, align, tmp), audio / "u1.wav"


@case
def featurize_wav_cut_in_its_header(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (audio / "u1.wav").write_bytes((audio / "u1.wav").read_bytes()[:30])
    return _featurize(audio, align, tmp), audio / "u1.wav"


@case
def featurize_nan_samples(c, tmp):
    audio, align = _audio_copy(c, tmp)
    x = np.random.default_rng(0).standard_normal(int(0.6 * SR)).astype(np.float32) * 0.1
    x[100] = np.nan
    _float_wav(audio / "u2.wav", x)
    return _featurize(audio, align, tmp), audio / "u2.wav"


@case
def featurize_sample_rate_zero(c, tmp):
    audio, align = _audio_copy(c, tmp)
    raw = bytearray((audio / "u0.wav").read_bytes())
    raw[24:32] = struct.pack("<II", 0, 0)  # sample rate and byte rate
    (audio / "u0.wav").write_bytes(bytes(raw))
    return _featurize(audio, align, tmp), audio / "u0.wav"


@case
def featurize_text_file_named_wav(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (audio / "u0.wav").write_text("not audio at all\n")
    return _featurize(audio, align, tmp), audio / "u0.wav"


@case
def featurize_textgrid_past_the_audio(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (align / "u1.TextGrid").write_text(_textgrid(_segments(0.9)))  # the audio lasts 0.6 s
    return _featurize(audio, align, tmp), align / "u1.TextGrid"


@case
def featurize_textgrid_without_header(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (align / "u1.TextGrid").write_text("xmin = 0\nxmax = 1\n")
    return _featurize(audio, align, tmp), align / "u1.TextGrid"


@case
def featurize_textgrid_cut_short(c, tmp):
    audio, align = _audio_copy(c, tmp)
    text = _textgrid(_segments())
    (align / "u1.TextGrid").write_text(text[: len(text) // 2])
    return _featurize(audio, align, tmp), align / "u1.TextGrid"


@case
def featurize_textgrid_unknown_phone(c, tmp):
    audio, align = _audio_copy(c, tmp)
    segs = _segments()
    segs[2] = (segs[2][0], segs[2][1], "XYZ")
    (align / "u0.TextGrid").write_text(_textgrid(segs))
    return _featurize(audio, align, tmp), align / "u0.TextGrid"


@case
def featurize_textgrid_other_tier(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (align / "u2.TextGrid").write_text(_textgrid(_segments(), tier="words"))
    return _featurize(audio, align, tmp), align / "u2.TextGrid"


@case
def featurize_textgrid_backwards_interval(c, tmp):
    audio, align = _audio_copy(c, tmp)
    segs = _segments()
    segs[1] = (segs[1][1], segs[1][0], segs[1][2])
    (align / "u2.TextGrid").write_text(_textgrid(segs))
    return _featurize(audio, align, tmp), align / "u2.TextGrid"


@case
def featurize_textgrid_negative_time(c, tmp):
    audio, align = _audio_copy(c, tmp)
    segs = _segments()
    segs[0] = (-0.5, segs[0][1], segs[0][2])
    (align / "u2.TextGrid").write_text(_textgrid(segs))
    return _featurize(audio, align, tmp), align / "u2.TextGrid"


@case
def featurize_phn_past_the_audio(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (align / "u0.TextGrid").unlink()
    (align / "u0.PHN").write_text("0 4000 h#\n4000 20000 s\n")  # 1.25 s of labels, 0.6 s of audio
    return _featurize(audio, align, tmp), align / "u0.PHN"


@case
def featurize_phn_malformed_line(c, tmp):
    audio, align = _audio_copy(c, tmp)
    (align / "u0.TextGrid").unlink()
    (align / "u0.PHN").write_text("0 4000 h#\n4000 x s\n")
    return _featurize(audio, align, tmp), align / "u0.PHN"


@case
def featurize_missing_audio_folder(c, tmp):
    return _featurize(tmp / "nowhere", c["align"], tmp), tmp / "nowhere"


@case
def featurize_missing_alignment_folder(c, tmp):
    return _featurize(c["audio"], tmp / "noalign", tmp), tmp / "noalign"


@case
def featurize_out_is_a_file(c, tmp):
    shutil.rmtree(tmp / "out")
    (tmp / "out").write_text("a file\n")
    return _featurize(c["audio"], c["align"], tmp), tmp / "out"


@case
def featurize_out_inside_a_file(c, tmp):
    args = _featurize(c["audio"], c["align"], tmp)
    args[args.index("--out") + 1] = str(tmp / "out" / "keep.txt" / "sub")
    return args, tmp / "out" / "keep.txt"


# --- train ---------------------------------------------------------------------------------------


def _data_copy(c: dict[str, Path], tmp: Path) -> Path:
    data = tmp / "data"
    shutil.copytree(c["data"], data)
    return data


def _train(data: Path, tmp: Path, config: Path, *extra: str) -> list[str]:
    return ["phoneme", "train", "--data", str(data), "--out", str(tmp / "out"), "--config",
            str(config), "--device", "cpu", "--quiet", *extra]  # fmt: skip


@case
def train_missing_data_folder(c, tmp):
    return _train(tmp / "nodata", tmp, c["config"]), tmp / "nodata"


@case
def train_features_of_the_wrong_width(c, tmp):
    data = _data_copy(c, tmp)
    np.save(data / "train_11.npy", np.zeros((600, 39), np.float32))
    return _train(data, tmp, c["config"]), data / "train_11.npy"


@case
def train_nan_features(c, tmp):
    data = _data_copy(c, tmp)
    x = np.load(data / "train_11.npy")
    x[7, 3] = np.nan
    np.save(data / "train_11.npy", x)
    return _train(data, tmp, c["config"]), data / "train_11.npy"


@case
def train_pickled_features(c, tmp):
    data = _data_copy(c, tmp)
    np.save(data / "train_11.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    return _train(data, tmp, c["config"]), data / "train_11.npy"


@case
def train_labels_out_of_range(c, tmp):
    data = _data_copy(c, tmp)
    y = np.load(data / "train_label_11.npy")
    y[5] = "57"
    np.save(data / "train_label_11.npy", y)
    return _train(data, tmp, c["config"]), data / "train_label_11.npy"


@case
def train_fewer_labels_than_rows(c, tmp):
    data = _data_copy(c, tmp)
    np.save(data / "train_label_11.npy", np.load(data / "train_label_11.npy")[:-10])
    return _train(data, tmp, c["config"]), data / "train_label_11.npy"


@case
def train_nan_test_features(c, tmp):
    data = _data_copy(c, tmp)
    x = np.load(data / "test_11.npy")
    x[-1, -1] = np.inf
    np.save(data / "test_11.npy", x)
    return _train(data, tmp, c["config"]), data / "test_11.npy"


@case
def train_featurized_file_changed_since(c, tmp):
    """A featurized folder whose utterance index was edited afterwards."""
    audio, align = _audio_copy(c, tmp)
    feat = tmp / "feat"
    assert main(["phoneme", "featurize", "--audio", str(audio), "--align", str(align),
                 "--out", str(feat)]) == 0  # fmt: skip
    index = feat / "train_utterances.csv"
    index.write_text(index.read_text() + "\n")
    return _train(feat, tmp, c["config"]), index


def _bad_config(tmp: Path, text: str) -> Path:
    path = tmp / "bad.toml"
    path.write_text("hidden = [16]\nepochs = 1\n" + text)
    return path


@case
def train_lr_zero(c, tmp):
    cfg = _bad_config(tmp, "lr = 0\n")
    return _train(c["data"], tmp, cfg), cfg


@case
def train_dropout_of_one(c, tmp):
    cfg = _bad_config(tmp, "dropout = 1.0\n")
    return _train(c["data"], tmp, cfg), cfg


def _setting_case(text: str) -> None:
    def make(c, tmp):
        cfg = _bad_config(tmp, text)
        return _train(c["data"], tmp, cfg), cfg

    name = "train_setting_" + text.split("=")[0].strip()
    make.__name__ = name
    CASES[name] = make


for _text in (
    "betas = [0.9]\n",
    "median_windows = []\n",
    "transition_weights = []\n",
    "scheduler = 'cosine'\nscheduler_kwargs = { bogus = 1 }\n",
    "members = 0\n",
    "threads = -2\n",
):
    _setting_case(_text)


@case
def train_negative_width(c, tmp):
    cfg = tmp / "bad.toml"
    cfg.write_text("hidden = [16, -4]\nepochs = 1\n")
    return _train(c["data"], tmp, cfg), cfg


@case
def train_config_not_toml(c, tmp):
    cfg = tmp / "bad.toml"
    cfg.write_text("hidden = [16\n")
    return _train(c["data"], tmp, cfg), cfg


@case
def train_out_is_a_file(c, tmp):
    shutil.rmtree(tmp / "out")
    (tmp / "out").write_text("a file\n")
    return _train(c["data"], tmp, c["config"]), tmp / "out"


@case
def train_resume_without_a_run(c, tmp):
    return _train(c["data"], tmp, c["config"], "--resume"), tmp / "out"


@case
def train_resume_with_other_settings(c, tmp):
    stage = staging_dir(tmp / "out")
    stage.mkdir()
    settings = json.loads((c["run"] / "config.json").read_text())
    (stage / "config.json").write_text(json.dumps({**settings, "lr": 0.5}))
    return _train(c["data"], tmp, c["config"], "--resume"), tmp / "out"


# --- predict and evaluate ------------------------------------------------------------------------


def _run_copy(c: dict[str, Path], tmp: Path, *, sealed: bool = True) -> Path:
    run = tmp / "run"
    shutil.copytree(c["run"], run)
    if not sealed:  # a folder built by hand: no manifest, each file is checked as it loads
        (run / "manifest.json").unlink()
    return run


def _predict(run: Path, tmp: Path, features: Path) -> list[str]:
    return ["phoneme", "predict", "--model", str(run), "--input", str(features), "--output",
            str(tmp / "out" / "keep.txt"), "--device", "cpu"]  # fmt: skip


def _tamper(run: Path, change: Callable[[dict], None]) -> Path:
    path = run / "model" / "model.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))
    return path


@case
def predict_output_is_a_folder(c, tmp):
    args = _predict(c["run"], tmp, c["data"] / "test_11.npy")
    args[args.index("--output") + 1] = str(tmp / "out")
    return args, tmp / "out"


@case
def predict_missing_model(c, tmp):
    return _predict(tmp / "norun", tmp, c["data"] / "test_11.npy"), tmp / "norun"


@case
def predict_interrupted_run(c, tmp):
    run = tmp / "run"
    staging_dir(run).mkdir()
    (staging_dir(run) / "config.json").write_text("{}")
    return _predict(run, tmp, c["data"] / "test_11.npy"), run


@case
def predict_tampered_sealed_run(c, tmp):
    run = _run_copy(c, tmp)
    _tamper(run, lambda info: info.update(val_accuracy=1.0))
    return _predict(run, tmp, c["data"] / "test_11.npy"), run


@case
def predict_run_with_a_foreign_file(c, tmp):
    run = _run_copy(c, tmp)
    (run / "model" / "member_1.pt").write_bytes(b"another run's member")
    return _predict(run, tmp, c["data"] / "test_11.npy"), run


@case
def predict_model_json_config_of_wrong_type(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    path = _tamper(run, lambda info: info.update(config="mlp"))
    return _predict(run, tmp, c["data"] / "test_11.npy"), path


@case
def predict_model_json_setting_of_wrong_type(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    path = _tamper(run, lambda info: info["config"].update(hidden="wide"))
    return _predict(run, tmp, c["data"] / "test_11.npy"), path


@case
def predict_model_json_without_smoothing(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    path = _tamper(run, lambda info: info.pop("smoothing"))
    return _predict(run, tmp, c["data"] / "test_11.npy"), path


@case
def predict_model_json_smoothing_of_wrong_type(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    path = _tamper(run, lambda info: info["smoothing"].update(window="five"))
    return _predict(run, tmp, c["data"] / "test_11.npy"), path


@case
def predict_model_json_prior_as_a_path(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    path = _tamper(run, lambda info: info.update(prior="../../etc/passwd"))
    return _predict(run, tmp, c["data"] / "test_11.npy"), path


@case
def predict_model_json_not_json(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    (run / "model" / "model.json").write_text("{'task': phoneme")
    return _predict(run, tmp, c["data"] / "test_11.npy"), run / "model" / "model.json"


@case
def predict_corrupt_weights(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    (run / "model" / "model.pt").write_bytes(b"\x80\x02garbage")
    return _predict(run, tmp, c["data"] / "test_11.npy"), run / "model" / "model.pt"


@case
def predict_transitions_of_the_wrong_shape(c, tmp):
    run = _run_copy(c, tmp, sealed=False)
    np.save(run / "model" / "transitions.npy", np.ones((3, 3)))
    return _predict(run, tmp, c["data"] / "test_11.npy"), run / "model" / "transitions.npy"


@case
def predict_features_of_the_wrong_width(c, tmp):
    bad = tmp / "x.npy"
    np.save(bad, np.zeros((10, 428), np.float32))
    return _predict(c["run"], tmp, bad), bad


@case
def predict_nan_features(c, tmp):
    bad = tmp / "x.npy"
    x = np.load(c["data"] / "test_11.npy")
    x[3, 3] = np.nan
    np.save(bad, x)
    return _predict(c["run"], tmp, bad), bad


@case
def predict_features_not_npy(c, tmp):
    bad = tmp / "x.npy"
    bad.write_text("1,2,3\n")
    return _predict(c["run"], tmp, bad), bad


@case
def evaluate_labels_out_of_range(c, tmp):
    data = _data_copy(c, tmp)
    y = np.load(data / "train_label_11.npy")
    y[0] = "-3"
    np.save(data / "train_label_11.npy", y)
    return ["phoneme", "evaluate", "--model", str(c["run"]), "--data", str(data)], data / (
        "train_label_11.npy"
    )


@case
def evaluate_missing_model(c, tmp):
    return ["phoneme", "evaluate", "--model", str(tmp / "norun"), "--data", str(c["data"])], (
        tmp / "norun"
    )


@case
def evaluate_model_of_another_task(c, tmp):
    run = tmp / "run"
    run.mkdir()
    (run / "model.json").write_text('{"task": "covid"}')
    return ["phoneme", "evaluate", "--model", str(run), "--data", str(c["data"])], run


@case
def evaluate_missing_data(c, tmp):
    return ["phoneme", "evaluate", "--model", str(c["run"]), "--data", str(tmp / "nodata")], (
        tmp / "nodata"
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_line(
    name: str, corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("written before; must survive\n")
    argv, culprit = CASES[name](corpus, tmp_path)
    before = _snapshot(out) if out.is_dir() else None
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainlab: error: "), err
    assert str(culprit) in lines[0] or culprit.name in lines[0], (culprit, lines[0])
    if before is not None:
        assert _snapshot(out) == before  # nothing already there was touched
        assert not [p for p in tmp_path.glob(".out*") if p.name != ".out.partial"]
    if "resume" not in name:
        assert not staging_dir(out).exists()  # a refused start leaves no staging folder


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
@pytest.mark.parametrize("command", ["featurize", "train"])
def test_read_only_out_is_refused(
    command: str, corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("kept\n")
    out.chmod(0o555)
    try:
        argv = (
            _featurize(corpus["audio"], corpus["align"], tmp_path)
            if command == "featurize"
            else _train(corpus["data"], tmp_path, corpus["config"])
        )
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "not writable" in err and str(out) in err and len(err.strip().splitlines()) == 1
    finally:
        out.chmod(0o755)


def test_presets_takes_no_input(capsys: pytest.CaptureFixture[str]):
    assert main(["phoneme", "presets", "extra"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unrecognized arguments: extra" in err
    assert main(["phoneme", "presets"]) == 0
    assert "mlp" in capsys.readouterr().out


def test_a_killed_featurize_leaves_nothing_the_next_one_keeps(
    corpus: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    assert main(_featurize(corpus["audio"], corpus["align"], tmp_path, "--test")) == 0
    test_files = _snapshot(out)
    stage = staging_dir(out)  # what a featurize killed while writing its arrays leaves
    stage.mkdir()
    (stage / "config.json").write_text("{}")
    (stage / ".train_11.abc123.npy").write_bytes(b"\0" * 4096)
    assert main(_featurize(corpus["audio"], corpus["align"], tmp_path)) == 0
    assert "interrupted featurize" in capsys.readouterr().out
    assert not stage.exists() and not list(tmp_path.glob(".out*"))
    after = _snapshot(out)
    for name in ("train_11.npy", "train_label_11.npy", "train_utterances.csv", "manifest.json"):
        assert name in after
    assert all(after[k] == v for k, v in test_files.items() if k not in ("manifest.json",
                                                                          "config.json"))  # fmt: skip
    manifest = json.loads(after["manifest.json"])["files"]
    assert {"test_11.npy", "train_11.npy"} <= set(manifest)
