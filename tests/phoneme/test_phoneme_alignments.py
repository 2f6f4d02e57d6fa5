"""Phone alignments: TIMIT .PHN and Praat TextGrids (long and short), the 61 -> 39 fold, frame labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.errors import DataError
from trainlab.phoneme._textgrid import parse_textgrid
from trainlab.phoneme.alignments import (
    FOLD,
    find_alignments,
    fold_phone,
    read_alignment,
    read_phn,
)
from trainlab.phoneme.files import PHONE_TO_INDEX, PHONES

TIMIT_61 = (
    "iy ih eh ey ae aa aw ay ah ao oy ow uh uw ux er ax ix axr ax-h jh ch b d g p t k dx s sh z zh "
    "f th v dh m n ng em nx en eng l r w y hh hv el bcl dcl gcl pcl tcl kcl q pau epi h#"
).split()

LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0.0
xmax = 0.3
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0.0
        xmax = 0.3
        intervals: size = 1
            intervals [1]:
                xmin = 0.0
                xmax = 0.3
                text = "hi ""there"""
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0.0
        xmax = 0.3
        intervals: size = 4
            intervals [1]:
                xmin = 0.0
                xmax = 0.05
                text = ""
            intervals [2]:
                xmin = 0.05
                xmax = 0.12
                text = "HH"
            intervals [3]:
                xmin = 0.12
                xmax = 0.25
                text = "AY1"
            intervals [4]:
                xmin = 0.25
                xmax = 0.3
                text = "spn"
'''

SHORT = """File type = "ooTextFile"
Object class = "TextGrid"

0
0.3
<exists>
1
"IntervalTier"
"phones"
0
0.3
3
0
0.1
"sil"
0.1
0.2
"ZH"
0.2
0.3
"AO2"
"""


def test_fold_covers_all_61_timit_phones_onto_the_39():
    folded = {fold_phone(p) for p in TIMIT_61}
    assert folded - {None} == set(PHONES)
    assert fold_phone("q") is None
    for p in ("bcl", "dcl", "gcl", "pcl", "tcl", "kcl", "pau", "epi", "h#"):
        assert fold_phone(p) == "sil"
    pairs = {"ao": "aa", "zh": "sh", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh",
             "ix": "ih", "el": "l", "em": "m", "en": "n", "nx": "n", "eng": "ng", "ux": "uw"}  # fmt: skip
    for a, b in pairs.items():
        assert fold_phone(a) == b and FOLD[a] == b


def test_fold_arpabet_with_stress_and_mfa_marks():
    assert fold_phone("AH0") == "ah" and fold_phone("IY1") == "iy" and fold_phone("ER2") == "er"
    assert fold_phone("AO1") == "aa" and fold_phone("ZH") == "sh"
    for mark in ("sil", "sp", "spn", "", "  "):
        assert fold_phone(mark) == "sil"
    with pytest.raises(KeyError):
        fold_phone("xyz")


def test_phn_segments_fold_and_q_has_no_class(tmp_path: Path):
    p = tmp_path / "SA1.PHN"
    p.write_text("0 3200 h#\n3200 4000 q\n4000 5600 iy\n5600 6400 dcl\n6400 8000 ax-h\n")
    a = read_phn(p)
    assert a.phones() == ["sil", None, "iy", "sil", "ah"]
    np.testing.assert_allclose(a.starts, [0, 0.2, 0.25, 0.35, 0.4])
    # frame t's centre is at 10 ms * t + 12.5 ms
    lab = a.frame_labels(50)
    sil, iy, ah = PHONE_TO_INDEX["sil"], PHONE_TO_INDEX["iy"], PHONE_TO_INDEX["ah"]
    assert lab[18] == sil  # centre 192.5 ms
    assert lab[19] == -1 and lab[23] == -1  # 202.5 .. 242.5 ms: under q
    assert lab[24] == iy  # 252.5 ms
    assert lab[38] == sil and lab[39] == ah  # 392.5 ms under dcl, 402.5 ms under ax-h
    assert lab[48] == ah and lab[49] == -1  # 502.5 ms is past the end


def test_frame_centre_exactly_on_a_boundary_belongs_to_the_next_segment(tmp_path: Path):
    p = tmp_path / "x.phn"
    p.write_text("0 200 h#\n200 1000 s\n")  # 200 samples = 12.5 ms = frame 0's centre
    lab = read_phn(p).frame_labels(3)
    assert lab.tolist() == [PHONE_TO_INDEX["s"]] * 3


@pytest.mark.parametrize("text", [LONG, SHORT])
def test_textgrid_long_and_short_formats(tmp_path: Path, text: str):
    p = tmp_path / "utt.TextGrid"
    p.write_text(text)
    a = read_alignment(p)
    if text is LONG:
        assert a.phones() == ["sil", "hh", "ay", "sil"]
        np.testing.assert_allclose(a.ends, [0.05, 0.12, 0.25, 0.3])
    else:
        assert a.phones() == ["sil", "sh", "aa"]
    assert a.frame_labels(29).min() >= 0  # last centre 292.5 ms < 300 ms


def test_textgrid_escaped_quotes_and_utf16(tmp_path: Path):
    tiers = parse_textgrid(LONG)
    assert tiers[0].items[0][2] == 'hi "there"'
    p = tmp_path / "u16.TextGrid"
    p.write_bytes(SHORT.encode("utf-16"))
    assert read_alignment(p).phones() == ["sil", "sh", "aa"]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("a.PHN", "0 100\n", "expected 'start end phone'"),
        ("b.PHN", "0 x iy\n", "integers"),
        ("c.PHN", "0 100 zz\n", "unknown phone label 'zz'"),
        ("d.PHN", "100 0 iy\n", "ends"),
        ("e.PHN", "0 100 iy\n50 200 s\n", "overlap"),
        ("f.PHN", "", "no segments"),
        ("g.TextGrid", "hello", "not a Praat text TextGrid"),
        ("h.TextGrid", SHORT.replace('"phones"', '"words"'), "no interval tier named 'phones'"),
        ("i.TextGrid", SHORT[: SHORT.index('"ZH"')], "ends early"),
        ("j.wav", "", "unknown alignment format"),
    ],
)
def test_bad_alignment_files(tmp_path: Path, name: str, content: str, match: str):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DataError, match=match) as e:
        read_alignment(p)
    assert e.value.path == p


def test_find_alignments_recursive_and_duplicate_ids(tmp_path: Path):
    (tmp_path / "dr1" / "spk").mkdir(parents=True)
    (tmp_path / "dr1" / "spk" / "sa1.PHN").write_text("0 10 h#\n")
    (tmp_path / "b.TextGrid").write_text(SHORT)
    (tmp_path / "notes.txt").write_text("x")
    assert sorted(find_alignments(tmp_path)) == ["b", "sa1"]
    (tmp_path / "sa1.TextGrid").write_text(SHORT)
    with pytest.raises(DataError, match="sa1"):
        find_alignments(tmp_path)


def test_real_mfa_textgrids(shared_data: Path):
    folder = shared_data / "ljspeech_mfa" / "TextGrid" / "LJSpeech"
    if not folder.is_dir():
        pytest.skip(f"ljspeech_mfa TextGrids not found at {folder}")
    for name in ("LJ001-0001", "LJ002-0114"):
        a = read_alignment(folder / f"{name}.TextGrid")
        assert len(a.labels) > 10 and (a.labels >= 0).all()
        assert a.starts[0] == 0.0 and np.allclose(a.starts[1:], a.ends[:-1])  # contiguous
        lab = a.frame_labels(int((a.duration - 0.025) / 0.01) + 1)
        assert (lab >= 0).all()
    assert read_alignment(folder / "LJ001-0001.TextGrid").phones()[:3] == ["p", "r", "ih"]


def test_speech_end_ignores_trailing_silence() -> None:
    # Montreal Forced Aligner pads a final silence that may run past the audio; speech may not
    from trainlab.phoneme.alignments import Alignment
    from trainlab.phoneme.files import PHONE_TO_INDEX

    sil, ah = PHONE_TO_INDEX["sil"], PHONE_TO_INDEX["ah"]
    a = Alignment(np.array([0.0, 0.2, 0.6]), np.array([0.2, 0.6, 1.4]), np.array([sil, ah, sil]))
    assert a.duration == 1.4 and a.speech_end == 0.6
    b = Alignment(np.array([0.0, 0.2]), np.array([0.2, 1.4]), np.array([sil, ah]))
    assert b.speech_end == 1.4
