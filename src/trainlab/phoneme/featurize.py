"""From audio and phone alignments to the competition's framewise format (``train_11.npy`` & co.).

Per utterance: read the wav (resampled to 16 kHz), 13 Kaldi MFCCs (25 ms window, 10 ms shift, no
dither, Kaldi's defaults otherwise: Povey window, 23 mel bins, c0 replaced by log energy, lifter 22),
deltas and delta-deltas with Kaldi's regression window of 2 (``add-deltas``, computed by
``kaldi_native_fbank.compute_deltas``), per-utterance mean and
variance normalisation of the 39 features, then 11-frame context rows with edge frames repeated,
and one label per frame: the phone under the frame's centre (``10 ms * t + 12.5 ms``). Frames
without a class (under TIMIT's ``q``) are dropped from the training rows.

Following the ml2021spring-hw2 data (TIMIT, Garofolo et al. 1993) and Kaldi's feature pipeline
(Povey et al. 2011, "The Kaldi speech recognition toolkit").
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab._io import atomic_write_with
from trainlab.errors import DataError
from trainlab.phoneme._audio import read_audio
from trainlab.phoneme.alignments import find_alignments, read_alignment
from trainlab.phoneme.files import CONTEXT, Utterances, labels_to_strings
from trainlab.runs import MANIFEST, begin_run, check_output_dir, publish_run

AUDIO_SUFFIXES = (".wav",)
OVERRUN_TOLERANCE_S = 0.01  # an alignment may end this much after its audio (rounded times)


@dataclass
class FeaturizeConfig:
    """How audio becomes frames. The defaults reproduce the competition's 39-dim features."""

    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    num_ceps: int = 13
    delta_order: int = 2
    delta_window: int = 2
    context: int = CONTEXT  # frames per row (odd)
    cmvn: bool = True  # per-utterance mean/variance normalisation
    tier: str = "phones"  # the TextGrid tier holding phones
    workers: int = 2  # processes; 1 = in this process


@dataclass
class FeaturizeReport:
    """What :func:`featurize` did, for the command line to print."""

    utterances: int = 0
    frames: int = 0
    dropped_frames: int = 0  # frames with no class (q, gaps, past the alignment's end)
    seconds: float = 0.0
    missing_alignment: list[str] = field(default_factory=list)  # wav ids without an alignment
    missing_audio: list[str] = field(default_factory=list)  # alignment ids without a wav
    empty: list[str] = field(default_factory=list)  # utterances left with no labelled frame
    short_alignment: list[str] = field(default_factory=list)  # alignment ends > 0.1 s early
    outputs: list[Path] = field(default_factory=list)


def mfcc(samples: np.ndarray, config: FeaturizeConfig | None = None) -> np.ndarray:
    """Kaldi MFCCs of 16 kHz samples (int16 scale). Returns (T, num_ceps) float32.

    ``T = 1 + (len - 400) // 160`` (Kaldi's ``snip_edges``); empty when shorter than one window.
    """
    import kaldi_native_fbank as knf

    cfg = config or FeaturizeConfig()
    opts = knf.MfccOptions()
    opts.frame_opts.samp_freq = float(cfg.sample_rate)
    opts.frame_opts.frame_length_ms = cfg.frame_length_ms
    opts.frame_opts.frame_shift_ms = cfg.frame_shift_ms
    opts.frame_opts.dither = 0.0  # reproducible features
    opts.num_ceps = cfg.num_ceps
    m = knf.OnlineMfcc(opts)
    m.accept_waveform(float(cfg.sample_rate), np.ascontiguousarray(samples, dtype=np.float32))
    m.input_finished()
    n = m.num_frames_ready
    if n == 0:
        return np.zeros((0, cfg.num_ceps), dtype=np.float32)
    return np.asarray([m.get_frame(i) for i in range(n)], dtype=np.float32)


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Append delta features as Kaldi's ``add-deltas`` (``kaldi_native_fbank.compute_deltas``).

    Each order is a regression filter over the frames, out-of-range frames clamped to the edges.

    Args:
        feats: (T, D) frames.
        order: highest delta order (2 = deltas and delta-deltas).
        window: half-width of the regression window.

    Returns:
        (T, D * (order + 1)) float32: the frames, then each order's deltas.
    """
    import kaldi_native_fbank as knf

    opts = knf.DeltaOptions(order=order, window=window)
    x = np.ascontiguousarray(feats, dtype=np.float32)
    return np.asarray(knf.compute_deltas(opts, x), dtype=np.float32)


def cmvn(feats: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Per-utterance mean and variance normalisation of each feature column."""
    x = feats.astype(np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.maximum(std, eps)).astype(np.float32)


def splice(feats: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """Rows of ``context`` consecutive frames centred on each frame, edge frames repeated.

    (T, D) -> (T, context * D); row ``t`` holds frames ``t - c//2 .. t + c//2`` in order.
    """
    if context % 2 != 1:
        raise ValueError(f"context must be odd, got {context}")
    t, d = feats.shape
    half = context // 2
    idx = np.clip(np.arange(t)[:, None] + np.arange(-half, half + 1)[None, :], 0, t - 1)
    return feats[idx].reshape(t, context * d)


def utterance_features(samples: np.ndarray, config: FeaturizeConfig | None = None) -> np.ndarray:
    """MFCC + deltas (+ CMVN) of one utterance's 16 kHz samples. Returns (T, 39) float32."""
    cfg = config or FeaturizeConfig()
    feats = mfcc(samples, cfg)
    if len(feats) == 0:
        return np.zeros((0, cfg.num_ceps * (cfg.delta_order + 1)), dtype=np.float32)
    feats = add_deltas(feats, cfg.delta_order, cfg.delta_window)
    return cmvn(feats) if cfg.cmvn else feats


def featurize(
    audio_dir: str | Path,
    out_dir: str | Path,
    align_dir: str | Path | None = None,
    *,
    test: bool = False,
    config: FeaturizeConfig | None = None,
) -> FeaturizeReport:
    """Featurize every wav under ``audio_dir`` into the competition's layout in ``out_dir``.

    Writes ``train_11.npy``, ``train_label_11.npy`` and ``train_utterances.csv`` (or, with
    ``test``, ``test_11.npy`` and ``test_utterances.csv``) and ``config.json``. Utterances are in
    id order. The folder is staged beside ``out_dir`` and switched into place, sealed by a
    manifest, when every file is written (:func:`trainlab.runs.begin_run`); the files already in
    ``out_dir`` that this call does not rewrite (the other split's) are carried over, hard-linked.
    So ``out_dir`` is always the old folder or the new one, and the staging files of a featurize
    that was killed are removed by the next one.

    Args:
        audio_dir: searched recursively for ``*.wav`` (any case); the file stem is the utterance id.
        out_dir: where the arrays go (created).
        align_dir: searched recursively for ``.PHN``/``.TextGrid`` files matched by stem; required
            unless ``test``, where it is optional and only restricts the set to aligned utterances.
        test: write unlabelled test features; every frame is kept.
        config: feature settings.

    Returns:
        A :class:`FeaturizeReport`; wavs without alignments (and vice versa) are listed, not fatal.

    Raises:
        DataError: no wavs, no matching alignment at all, or an unreadable file.
    """
    cfg = config or FeaturizeConfig()
    t0 = time.perf_counter()
    out = check_output_dir(out_dir)
    wavs = _find_audio(Path(audio_dir))
    report = FeaturizeReport()
    ids, aligns = _match(wavs, audio_dir, align_dir, test, report)
    prefix = "test" if test else "train"
    stage = begin_run(out, _settings(prefix, audio_dir, align_dir, cfg), log=_note_discarded)
    try:
        jobs = [(wavs[u], None if test else aligns[u], cfg) for u in ids]
        results = _map(_featurize_one, jobs, cfg.workers)
        kept_ids, feats, labels = _keep(ids, results, report)
        if not kept_ids:
            raise DataError(audio_dir, "no utterance produced a labelled frame")
        written = _write(stage, prefix, kept_ids, feats, labels, cfg.context)
        _carry_over(out, stage, {p.name for p in written})
        publish_run(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # a failed featurize leaves nothing behind
        raise
    report.outputs = [out / p.name for p in written]
    report.utterances = len(kept_ids)
    report.frames = sum(
        len(f) if lab is None else int((lab >= 0).sum()) for f, lab in zip(feats, labels)
    )
    report.seconds = time.perf_counter() - t0
    return report


def _match(
    wavs: dict[str, Path],
    audio_dir: str | Path,
    align_dir: str | Path | None,
    test: bool,
    report: FeaturizeReport,
) -> tuple[list[str], dict[str, Path]]:
    """The utterance ids to featurize and their alignments; unmatched ids go into ``report``."""
    aligns: dict[str, Path] = {}
    if align_dir is not None:
        aligns = find_alignments(align_dir)
    elif not test:
        raise DataError(None, "training features need alignments (--align DIR)")
    if align_dir is None:
        return sorted(wavs), aligns
    report.missing_alignment = sorted(set(wavs) - set(aligns))
    report.missing_audio = sorted(set(aligns) - set(wavs))
    ids = sorted(set(wavs) & set(aligns))
    if not ids:
        raise DataError(
            align_dir,
            f"none of the {len(aligns)} alignments matches one of the {len(wavs)} wavs under "
            f"{audio_dir} by file name (e.g. wav {next(iter(sorted(wavs)))!r})",
        )
    return ids, aligns


def _keep(
    ids: list[str],
    results: list[tuple[np.ndarray, np.ndarray | None, bool]],
    report: FeaturizeReport,
) -> tuple[list[str], list[np.ndarray], list[np.ndarray | None]]:
    """Drop utterances left without a labelled frame; note short alignments and dropped frames."""
    kept_ids: list[str] = []
    feats: list[np.ndarray] = []
    labels: list[np.ndarray | None] = []
    for uid, (f, lab, short) in zip(ids, results):
        if short:
            report.short_alignment.append(uid)
        if lab is not None:
            report.dropped_frames += int((lab < 0).sum())
        if len(f) == 0 or (lab is not None and (lab >= 0).sum() == 0):
            report.empty.append(uid)
            continue
        kept_ids.append(uid)
        feats.append(f)
        labels.append(lab)
    return kept_ids, feats, labels


def _featurize_one(
    job: tuple[Path, Path | None, FeaturizeConfig],
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    wav, align, cfg = job
    samples = read_audio(wav, cfg.sample_rate)
    feats = utterance_features(samples, cfg)
    if align is None:
        return feats, None, False
    a = read_alignment(align, cfg.tier)
    seconds = len(samples) / cfg.sample_rate
    if a.speech_end > seconds + OVERRUN_TOLERANCE_S:
        raise DataError(
            align,
            f"the alignment's speech runs to {a.speech_end:.3f} s, past the end of its audio {wav.name} "
            f"({seconds:.3f} s): the labels would be misaligned (wrong file, or the audio cut?)",
        )
    labels = a.frame_labels(len(feats), cfg.frame_shift_ms / 1000, cfg.frame_length_ms / 1000)
    return feats, labels, a.duration < seconds - 0.1


def _write(
    out: Path,
    prefix: str,
    ids: list[str],
    feats: list[np.ndarray],
    labels: list[np.ndarray | None],
    context: int,
) -> list[Path]:
    keep = [np.ones(len(f), bool) if lab is None else lab >= 0 for f, lab in zip(feats, labels)]
    lengths = np.asarray([int(k.sum()) for k in keep], dtype=np.int64)
    n = int(lengths.sum())
    d = feats[0].shape[1] * context
    x_path = out / f"{prefix}_11.npy"

    def write_x(tmp: Path) -> None:
        # filled utterance by utterance, so memory holds one utterance's rows at a time
        x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
        row = 0
        for f, k in zip(feats, keep):
            rows = splice(f, context)[k]
            x[row : row + len(rows)] = rows
            row += len(rows)
        x.flush()
        del x

    atomic_write_with(x_path, write_x)
    outputs = [x_path]
    if prefix == "train":
        y = np.concatenate([lab[k] for lab, k in zip(labels, keep) if lab is not None])
        y_path = out / f"{prefix}_label_11.npy"
        atomic_write_with(y_path, lambda tmp: np.save(tmp, labels_to_strings(y)))
        outputs.append(y_path)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    index = out / f"{prefix}_utterances.csv"
    Utterances(ids, starts, lengths).to_csv(index)
    outputs.append(index)
    return outputs


def _settings(
    prefix: str, audio_dir: str | Path, align_dir: str | Path | None, cfg: FeaturizeConfig
) -> dict[str, Any]:
    """What ``config.json`` records: the split, the sources and the feature settings."""
    return {
        "featurize": prefix,
        "audio": str(Path(audio_dir).resolve()),
        "align": None if align_dir is None else str(Path(align_dir).resolve()),
        **{k: v for k, v in asdict(cfg).items() if k != "workers"},
    }


def _note_discarded(_: str) -> None:
    print("note: removed the unfinished files of an interrupted featurize")


def _carry_over(out: Path, stage: Path, written: set[str]) -> None:
    """Hard-link (else copy) into ``stage`` what ``out`` holds besides the files rewritten."""
    if not out.is_dir():
        return
    for p in sorted(out.iterdir()):
        if p.name in written or p.name in (MANIFEST, "config.json") or p.name.endswith(".tmp"):
            continue
        dst = stage / p.name
        if p.is_symlink():
            os.symlink(os.readlink(p), dst)
        elif p.is_dir():
            shutil.copytree(p, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(p, dst)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(src, dst)


def _find_audio(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise DataError(root, "audio folder not found")
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file():
            if p.stem in found:
                raise DataError(p, f"utterance id {p.stem!r} also names {found[p.stem]}")
            found[p.stem] = p
    if not found:
        raise DataError(root, "no .wav files found (searched recursively)")
    return found


def _map(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> list[Any]:
    workers = max(1, min(workers, os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        return [fn(j) for j in jobs]
    import multiprocessing as mp

    with mp.get_context().Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8)))


__all__ = [
    "FeaturizeConfig",
    "FeaturizeReport",
    "add_deltas",
    "cmvn",
    "featurize",
    "mfcc",
    "splice",
    "utterance_features",
]
