"""Reading speech audio: RIFF wav (scipy) and TIMIT's NIST SPHERE ``.WAV`` files, resampled to 16 kHz.

Samples are returned as float32 on the 16-bit integer scale, the scale Kaldi's feature
extractors expect (``compute-mfcc-feats`` reads 16-bit PCM without dividing by 32768).
"""

from __future__ import annotations

import struct
import warnings
from math import gcd
from pathlib import Path

import numpy as np

from trainlab.errors import DataError


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read a mono or multi-channel wav (channels averaged) and resample it to ``sample_rate``.

    Returns:
        (samples,) float32 on the int16 scale.

    Raises:
        DataError: unreadable, truncated, empty or compressed audio, a sample rate that is not
            positive, or samples that are NaN or infinite.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DataError(path, f"cannot read the audio: {e.strerror}") from None
    if head.startswith(b"NIST_1A"):
        sr, x = _read_sphere(path)
    else:
        sr, x = _read_wav(path)
    if sr <= 0:
        raise DataError(path, f"impossible sample rate {sr} Hz in the header")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        raise DataError(path, "the audio holds no samples")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DataError(path, f"{bad} sample(s) are NaN or infinite")
    if sr != sample_rate:
        x = resample(x, sr, sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) by the reduced ratio ``target/orig``."""
    from scipy.signal import resample_poly

    g = gcd(int(orig_sr), int(target_sr))
    return resample_poly(x.astype(np.float64), target_sr // g, orig_sr // g)


def _read_wav(path: Path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)  # unknown chunks (LIST, ...)
            sr, x = wavfile.read(path)
    except OSError as e:
        raise DataError(path, f"cannot read the audio: {e.strerror or e}") from None
    except (ValueError, EOFError, struct.error, IndexError, TypeError) as e:
        raise DataError(path, f"not a readable wav file ({e or 'cut short'})") from None
    for w in caught:
        if "EOF" in str(w.message):  # the data chunk is shorter than its header says
            raise DataError(path, f"the wav file is truncated ({w.message})")
    return int(sr), _to_int16_scale(x, path)


def _to_int16_scale(x: np.ndarray, path: Path) -> np.ndarray:
    if x.dtype == np.int16:
        return x.astype(np.float32)
    if x.dtype == np.int32:
        return (x / 65536.0).astype(np.float32)
    if x.dtype == np.uint8:
        return ((x.astype(np.float32) - 128.0) * 256.0).astype(np.float32)
    if x.dtype.kind == "f":
        return (x * 32768.0).astype(np.float32)
    raise DataError(path, f"unsupported sample type {x.dtype}")


def _read_sphere(path: Path) -> tuple[int, np.ndarray]:
    """NIST SPHERE (TIMIT's original ``.WAV``): a text header, then raw PCM."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read the audio: {e.strerror or e}") from None
    try:
        header_size = int(raw[8:16].decode("ascii").strip())
        fields = {}
        for line in raw[16:header_size].decode("ascii", errors="replace").splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3:
                fields[parts[0]] = parts[2].strip()
        sr = int(fields.get("sample_rate", "16000"))
        width = int(fields.get("sample_n_bytes", "2"))
        channels = int(fields.get("channel_count", "1"))
    except (ValueError, UnicodeDecodeError):
        raise DataError(path, "malformed NIST SPHERE header") from None
    if channels < 1 or header_size < 16:
        raise DataError(path, f"malformed NIST SPHERE header ({channels} channels)")
    coding = fields.get("sample_coding", "pcm")
    if "shorten" in coding or "ulaw" in coding or width != 2:
        raise DataError(path, f"unsupported SPHERE coding {coding!r} ({width}-byte samples)")
    order = ">" if fields.get("sample_byte_format", "01") == "10" else "<"
    body = raw[header_size:]
    count = fields.get("sample_count")
    if len(body) % (2 * channels) or (
        count is not None and count.isdigit() and len(body) < int(count) * 2 * channels
    ):
        raise DataError(path, "the SPHERE file is truncated (fewer samples than its header says)")
    x = np.frombuffer(body, dtype=f"{order}i2")
    x = x[: len(x) - len(x) % channels].reshape(-1, channels)
    return sr, (x[:, 0] if channels == 1 else x).astype(np.float32)
