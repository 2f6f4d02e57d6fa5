"""Reading and validating the COVID files (generated data in the exact layouts, and the real files
where present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainlab.covid._synth import synthetic_covid
from trainlab.covid.files import LAYOUTS, load_covid_dir, read_covid
from trainlab.covid.series import time_order
from trainlab.errors import DataError


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def test_reads_both_layouts_with_unique_readable_names(synth: tuple[Path, str]) -> None:
    folder, name = synth
    train, test = load_covid_dir(folder)
    lay = LAYOUTS[name]
    assert train.layout is lay and test.layout is lay
    n_inputs = len(lay.states) + lay.n_days * len(lay.features) - 1
    assert train.X.shape == (4 * 12, n_inputs) and test.X.shape == (4 * 5, n_inputs)
    assert list(train.X.columns) == list(test.X.columns)
    assert train.X.columns.is_unique
    assert "cli_d1" in train.X.columns and f"tested_positive_d{lay.n_days - 1}" in train.X.columns
    assert lay.target == f"tested_positive_d{lay.n_days}" and lay.target not in train.X.columns
    assert train.y is not None and test.y is None
    raw = pd.read_csv(folder / "covid.train.csv")
    np.testing.assert_allclose(train.y, raw.iloc[:, -1].to_numpy())
    np.testing.assert_array_equal(test.ids, pd.read_csv(folder / "covid.test.csv")["id"].to_numpy())
    # persistence is the day before the target
    np.testing.assert_allclose(train.persistence(), raw.iloc[:, -1 - len(lay.features)].to_numpy())


def test_test_file_holding_the_target_is_rejected(synth: tuple[Path, str]) -> None:
    folder, _ = synth
    with pytest.raises(DataError, match=r"covid\.train\.csv: a test file must not hold the target"):
        read_covid(folder / "covid.train.csv", train=False)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda ls: (
                [",".join(ls[0].split(",")[:-1])] + [",".join(r.split(",")[:-1]) for r in ls[1:]]
            ),
            r"missing column\(s\) tested_positive_d",
        ),
        (
            lambda ls: [ls[0] + ",extra"] + [r + ",1" for r in ls[1:]],
            r"unexpected column\(s\) extra",
        ),
        (
            lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ",abc"] + ls[2:],
            r"non-numeric value 'abc' in column 'tested_positive_d\d' at row 1 \(line 2\)",
        ),
        (lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ",nan"] + ls[2:], r"non-finite value 'nan'"),
        (lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ",inf"] + ls[2:], r"non-finite value 'inf'"),
        (lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ","] + ls[2:], r"empty cell in column"),
        (lambda ls: [ls[0]], r"no data rows"),
        (lambda ls: [], r"file is empty"),
        (lambda ls: [ls[0], ls[1], ls[1]] + ls[3:], r"duplicate id 0"),
    ],
)
def test_malformed_training_files_raise_one_clear_error(
    synth: tuple[Path, str],
    edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    folder, _ = synth
    path = folder / "covid.train.csv"
    _rewrite(path, edit)
    with pytest.raises(DataError, match=message) as info:
        read_covid(path, train=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_broken_one_hot_is_named(synth: tuple[Path, str]) -> None:
    folder, name = synth
    path = folder / "covid.test.csv"
    n_states = len(LAYOUTS[name].states)

    def no_state(lines: list[str]) -> list[str]:
        cells = lines[3].split(",")
        cells[1 : 1 + n_states] = ["0"] * n_states
        return lines[:3] + [",".join(cells)] + lines[4:]

    _rewrite(path, no_state)
    with pytest.raises(DataError, match=r"row 3 \(line 4\): the state columns must be one-hot"):
        read_covid(path, train=False)


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        load_covid_dir(tmp_path / "nope")
    (tmp_path / "covid.train.csv").write_text("id\n")
    with pytest.raises(DataError, match=r"missing covid\.test\.csv"):
        load_covid_dir(tmp_path)


def test_real_2021_and_2022_files(shared_data: Path) -> None:
    d21, d22 = shared_data / "covid", shared_data / "covid2022"
    if not (d21 / "covid.train.csv").is_file() or not (d22 / "covid.train.csv").is_file():
        pytest.skip(f"covid data not found under {shared_data}")
    train, test = load_covid_dir(d21)
    assert train.layout.name == "2021" and train.X.shape == (2060, 93) and test.X.shape == (893, 93)
    order = time_order(train)
    # the file lists each state's windows in time order; consecutive windows share two days
    for s in range(40):
        rows = np.flatnonzero(train.state == s)
        np.testing.assert_array_equal(order[rows], np.arange(len(rows)))
    first = np.flatnonzero(train.state == 0)
    np.testing.assert_array_equal(
        train.X["cli_d2"].to_numpy()[first[:-1]], train.X["cli_d1"].to_numpy()[first[1:]]
    )
    train22, test22 = load_covid_dir(d22)
    assert train22.layout.name == "2022" and train22.X.shape == (2699, 116) and len(test22) == 1078
    o22 = time_order(train22)
    # the 2022 file is shuffled: chained rows must overlap by four days
    for s in range(3):
        rows = np.flatnonzero(train22.state == s)
        rows = rows[np.argsort(o22[rows])]
        a, b = train22.X.iloc[rows[:-1]], train22.X.iloc[rows[1:]]
        share = np.mean(a["cli_d2"].to_numpy() == b["cli_d1"].to_numpy())
        assert share > 0.9


def test_a_file_in_the_other_layout_is_named(tmp_path: Path) -> None:
    synthetic_covid(tmp_path / "a", layout="2022", n_states=2, train_windows=6, test_windows=2)
    with pytest.raises(
        DataError, match=r"in the 2022 layout .* but the 2021 layout .* is expected"
    ):
        read_covid(tmp_path / "a" / "covid.test.csv", train=False, layout="2021")
    synthetic_covid(tmp_path / "b", layout="2021", n_states=2, train_windows=6, test_windows=2)
    (tmp_path / "a" / "covid.test.csv").replace(tmp_path / "b" / "covid.test.csv")
    with pytest.raises(DataError, match=r"b/covid\.test\.csv: this file is in the 2022 layout"):
        load_covid_dir(tmp_path / "b")


def test_crlf_and_float_formatted_one_hots_are_read(tmp_path: Path) -> None:
    train_path, test_path = synthetic_covid(tmp_path, n_states=2, train_windows=6, test_windows=2)
    before = load_covid_dir(tmp_path)
    # the generator writes one-hots as 0/1; the Kaggle files write 0.0/1.0, some copies use CRLF
    lines = train_path.read_text().splitlines()
    rows = [lines[0]] + [
        ",".join(c + ".0" if j <= 40 and j > 0 else c for j, c in enumerate(r.split(",")))
        for r in lines[1:]
    ]
    assert rows[1].split(",")[1] == "0.0"
    train_path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    test_path.write_bytes(test_path.read_text().replace("\n", "\r\n").encode())
    after = load_covid_dir(tmp_path)
    for a, b in zip(before, after):
        pd.testing.assert_frame_equal(a.X, b.X)
        np.testing.assert_array_equal(a.ids, b.ids)
