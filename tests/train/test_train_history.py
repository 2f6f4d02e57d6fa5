"""History: records, CSV/JSON export, and learning curves drawn without touching matplotlib's state."""

from __future__ import annotations

import csv
import json

import pytest

from trainlab.train import History, plot_curves


def history(n: int = 4, metric: bool = True) -> History:
    h = History(monitor="val_loss")
    for e in range(1, n + 1):
        rec = {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "lr": 0.1}
        if metric:
            rec["val_acc"] = 0.5 + 0.1 * e
        h.append(rec)
    h.best_epoch, h.best_value = n, 1.2 / n
    return h


def test_records_and_state_dict_round_trip():
    h = history()
    assert len(h) == 4 and h["epoch"] == [1, 2, 3, 4] and h.last["epoch"] == 4
    g = History()
    g.load_state_dict(h.state_dict())
    assert g.state_dict() == h.state_dict()


def test_csv_and_json(tmp_path):
    h = history()
    h.to_csv(tmp_path / "h.csv")
    h.to_json(tmp_path / "h.json")
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert [float(r["val_acc"]) for r in rows] == pytest.approx(h["val_acc"])
    assert json.loads((tmp_path / "h.json").read_text()) == h.state_dict()


def test_plot_leaves_matplotlib_backend_and_pyplot_alone(tmp_path, monkeypatch):
    import matplotlib

    def forbidden(*args, **kwargs):
        raise AssertionError("History.plot must not call matplotlib.use")

    monkeypatch.setattr(matplotlib, "use", forbidden)
    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    history().plot(tmp_path / "curves.png", title="run")
    plot_curves({"a": history(), "b": history(metric=False)}, tmp_path / "both.png")
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc
    for name in ("curves.png", "both.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []  # nothing registered with pyplot
