"""The competition's framewise format: loading, validation, utterance recovery and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.errors import DataError
from trainlab.phoneme._synth import write_synthetic_timit
from trainlab.phoneme.files import (
    NUM_CLASSES,
    PHONES,
    ROW_DIM,
    Utterances,
    centre_frames,
    check_finite,
    find_data_dir,
    labels_to_strings,
    load_timit,
    load_utterances,
    recover_utterances,
    row_chunks,
    split_by_utterance,
    utterance_index_path,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_synthetic_timit(tmp_path / "d", 1500, 400, mean_length=40, write_index=True)


def test_phone_set_is_the_courses_39_in_order():
    assert len(PHONES) == NUM_CLASSES == 39
    assert len(set(PHONES)) == 39
    assert PHONES[:5] == ("iy", "ih", "eh", "ae", "ah") and PHONES[-1] == "sil"
    assert PHONES.index("dx") == 26 and PHONES.index("hh") == 37


def test_load_memory_maps_features_and_converts_labels(folder: Path):
    d = load_timit(folder)
    assert isinstance(d.train_x, np.memmap) and d.train_x.shape == (1500, ROW_DIM)
    assert d.train_x.dtype == np.float32
    assert d.train_y is not None and d.train_y.dtype == np.int64
    raw = np.load(folder / "train_label_11.npy")
    assert raw.dtype.kind == "U"
    np.testing.assert_array_equal(d.train_y, raw.astype(int))
    assert d.test_x is not None and d.test_x.shape == (400, ROW_DIM)


def test_folder_with_or_without_timit_11_subfolder(tmp_path: Path):
    inner = write_synthetic_timit(tmp_path / "kaggle", 300, 0, subdir=True)
    assert inner.name == "timit_11"
    assert find_data_dir(tmp_path / "kaggle") == inner
    assert find_data_dir(inner) == inner
    assert load_timit(tmp_path / "kaggle").test_x is None


def test_missing_folder_and_files(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_timit(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train_11.npy"):
        load_timit(tmp_path / "empty")


def _write(folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train_11.npy", x)
    np.save(folder / "train_label_11.npy", y)
    return folder


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((5, 428), np.float32), np.array(["0"] * 5), r"shape \(N, 429\)"),
        (np.zeros((5, 429), np.float64), np.array(["0"] * 5), "float32"),
        (np.zeros((5, 429), np.float32), np.array(["0"] * 4), "4 labels for 5"),
        (np.zeros((5, 429), np.float32), np.array(["0", "1", "39", "2", "3"]), "39 is outside"),
        (np.zeros((5, 429), np.float32), np.array([0, 1, -1, 2, 3]), "-1 is outside"),
        (np.zeros((5, 429), np.float32), np.array(["0", "x", "1", "2", "3"]), "'x' is not a class"),
        (np.zeros((5, 429), np.float32), np.array([0.0, 1, 2, 3, 4]), "dtype float64"),
        (np.zeros((5, 429), np.float32), np.zeros((5, 2), np.int64), "1-D label"),
    ],
)
def test_each_bad_file_gives_one_clear_data_error(tmp_path: Path, x, y, match):
    folder = _write(tmp_path / "bad", x, y)
    with pytest.raises(DataError, match=match) as e:
        load_timit(folder)
    assert str(folder) in str(e.value)


def test_truncated_feature_file(tmp_path: Path):
    folder = _write(tmp_path / "t", np.ones((50, 429), np.float32), np.array(["1"] * 50))
    path = folder / "train_11.npy"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DataError, match="truncated") as e:
        load_timit(folder)
    assert e.value.path == path


def test_non_finite_rows_are_named(tmp_path: Path):
    x = np.zeros((300, 429), np.float32)
    x[123, 7] = np.nan
    with pytest.raises(DataError, match="row 123 holds NaN"):
        check_finite(x, "f.npy", chunk_rows=50)
    x[123, 7] = 0.0
    check_finite(x)


def test_a_memory_map_is_checked_from_its_file(tmp_path: Path):
    """Row chunks of a whole memory map come from file reads, equal to the map's rows; a view of
    a map is read as the view it is; a NaN in the file is named by its row."""
    x = np.random.default_rng(0).standard_normal((1000, 429)).astype(np.float32)
    x[777, 3] = np.inf
    np.save(tmp_path / "x.npy", x)
    m = np.load(tmp_path / "x.npy", mmap_mode="r")
    for source in (m, m[100:], x):
        got = np.concatenate([b.copy() for _, b in row_chunks(source, chunk_rows=300)])
        np.testing.assert_array_equal(got, np.asarray(source))
    assert [lo for lo, _ in row_chunks(m, chunk_rows=300)] == [0, 300, 600, 900]
    with pytest.raises(DataError, match="row 677 holds NaN"):
        check_finite(m[100:], "x.npy", chunk_rows=256)
    with pytest.raises(DataError, match="row 777 holds NaN"):
        check_finite(m, "x.npy", chunk_rows=256)


def test_not_an_npy_file(tmp_path: Path):
    folder = tmp_path / "n"
    folder.mkdir()
    (folder / "train_11.npy").write_text("hello")
    with pytest.raises(DataError, match="train_11.npy"):
        load_timit(folder)


def test_recovered_boundaries_equal_the_written_index(folder: Path):
    d = load_timit(folder)
    index = Utterances.from_csv(folder / "train_utterances.csv", 1500)
    rec = recover_utterances(d.train_x, chunk_rows=97)  # chunk edges inside utterances too
    np.testing.assert_array_equal(rec.starts, index.starts)
    np.testing.assert_array_equal(rec.lengths, index.lengths)
    assert rec.num_rows == 1500


def test_recovery_handles_one_frame_utterances():
    rng = np.random.default_rng(0)
    from trainlab.phoneme.featurize import splice

    parts = [splice(rng.standard_normal((n, 39)).astype(np.float32)) for n in (1, 7, 1, 1, 12)]
    rec = recover_utterances(np.concatenate(parts))
    np.testing.assert_array_equal(rec.lengths, [1, 7, 1, 1, 12])


def test_index_used_when_present_else_recovered(folder: Path):
    d = load_timit(folder)
    assert d.train_utterances().ids[0] == "train00000"
    (folder / "train_utterances.csv").unlink()
    assert d.train_utterances().ids[0] == "utt00000"
    assert utterance_index_path(folder / "test_11.npy").name == "test_utterances.csv"


def test_index_that_does_not_fit_the_rows_is_an_error(folder: Path):
    with pytest.raises(DataError, match="covers 1500 rows but the features hold 1499"):
        Utterances.from_csv(folder / "train_utterances.csv", 1499)
    bad = folder / "test_utterances.csv"
    bad.write_text("id,first_row,num_frames\na,0,5\nb,7,3\n")
    with pytest.raises(DataError, match="consecutive"):
        load_utterances(folder / "test_11.npy")
    bad.write_text("name,start\n")
    with pytest.raises(DataError, match="header"):
        load_utterances(folder / "test_11.npy")


def test_index_csv_round_trip(tmp_path: Path):
    u = Utterances(["a", "b,c"], np.array([0, 3]), np.array([3, 4]))
    u.to_csv(tmp_path / "u.csv")
    v = Utterances.from_csv(tmp_path / "u.csv", 7)
    assert v.ids == ["a", "b,c"]
    np.testing.assert_array_equal(v.rows([1, 0]), [3, 4, 5, 6, 0, 1, 2])


def test_split_by_utterance_is_disjoint_complete_and_seeded(folder: Path):
    u = load_timit(folder).train_utterances()
    tr, va = split_by_utterance(u, 0.2, seed=3)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == len(u)
    rows_tr, rows_va = set(u.rows(tr).tolist()), set(u.rows(va).tolist())
    assert rows_tr.isdisjoint(rows_va) and len(rows_tr | rows_va) == u.num_rows
    share = len(rows_va) / u.num_rows
    assert 0.15 < share < 0.3
    tr2, va2 = split_by_utterance(u, 0.2, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, split_by_utterance(u, 0.2, seed=4)[1])
    assert len(split_by_utterance(u, 0.0)[1]) == 0


def test_subset_renumbers_rows(folder: Path):
    u = load_timit(folder).train_utterances()
    sub = u.subset([2, 0])
    assert sub.starts[0] == 0 and sub.starts[1] == u.lengths[2]
    assert sub.num_rows == u.lengths[0] + u.lengths[2]


def test_centre_frames_and_label_strings(folder: Path):
    x = load_timit(folder).train_x
    np.testing.assert_array_equal(centre_frames(x)[1], x[0, 6 * 39 : 7 * 39])  # next frame
    s = labels_to_strings(np.array([0, 38, 7]))
    assert s.dtype == np.dtype("<U2") and s.tolist() == ["0", "38", "7"]
