"""The doctor inside trainlab's fit: records by default with an out_dir, nothing changed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.doctor import DoctorCallback, examine, read_records
from trainlab.errors import TrainingDiverged
from trainlab.train import TrainConfig, fit


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 8, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    return (x[:256], y[:256]), (x[256:], y[256:])


def _model():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2)
    )


def _cfg(out, **kw):
    settings = dict(epochs=4, batch_size=32, optimizer="momentum", optimizer_kwargs={"lr": 0.05},
                    out_dir=str(out), quiet=True, checkpoint=False, device="cpu")  # fmt: skip
    return TrainConfig(**{**settings, **kw})


def test_fit_writes_records_by_default_and_the_weights_are_bitwise_the_same(tmp_path):
    train, val = _data()
    watched, plain = _model(), _model()
    fit(watched, nn.functional.cross_entropy, train, val, _cfg(tmp_path / "on"))
    fit(plain, nn.functional.cross_entropy, train, val, _cfg(tmp_path / "off", doctor=False))
    for (name, a), b in zip(watched.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name
    assert not (tmp_path / "off" / "doctor.jsonl").exists()
    r = read_records(tmp_path / "on")
    assert r.ended and len(r.epochs) == 4 and r.last_step == 32
    assert {"train_loss", "val_loss", "lr"} <= set(r.epochs[-1])
    assert r.curvatures and r.baselines and r.probes[-1]["rows"] == 256  # the first 256 rows
    assert r.curvatures[-1]["final"] and r.curvatures[-1]["epoch"] == 4
    assert r.meta["optimizer"] == "Momentum" and r.meta["normalization"] is True
    report = examine(tmp_path / "on")
    assert report.findings and report.to_dict()["run"]["epochs"] == 4


def test_a_resumed_run_appends_to_its_records(tmp_path):
    train, val = _data()
    fit(
        _model(), nn.functional.cross_entropy, train, val, _cfg(tmp_path, epochs=2, checkpoint=True)
    )
    fit(_model(), nn.functional.cross_entropy, train, val,
        _cfg(tmp_path, epochs=4, checkpoint=True, resume=True))  # fmt: skip
    r = read_records(tmp_path)
    assert len(r.metas) == 2 and [e["epoch"] for e in r.epochs] == [1, 2, 3, 4]
    steps = [s["step"] for s in r.steps]
    assert steps == sorted(steps) and r.last_step == 32


def test_a_diverged_fit_leaves_its_event(tmp_path):
    train, val = _data()
    cb = DoctorCallback(tmp_path / "run", tensorboard=False)
    cfg = _cfg(tmp_path / "unused", doctor=False, epochs=3, optimizer="sgd",
               optimizer_kwargs={"lr": 1e6})  # fmt: skip
    with pytest.raises(TrainingDiverged):
        fit(_model(), nn.functional.cross_entropy, train, val, cfg, callbacks=[cb])
    r = read_records(tmp_path / "run")
    assert r.status == "diverged" and r.ended
    assert examine(tmp_path / "run").cause == "lr_too_high"


class _Seq(torch.nn.Module):
    """(B, T, 3) sequences and their lengths -> (B*T, 2) frame outputs."""

    def __init__(self, recurrent: bool = False) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(3, 3, batch_first=True) if recurrent else None
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x, lengths):
        h = self.rnn(x)[0] if self.rnn is not None else x
        return self.lin(h).reshape(-1, 2)


def _grow(tmp_path, model, batches):
    from trainlab.doctor import Monitor

    mon = Monitor(model, None, tmp_path, tensorboard=False, probe_rows=256)
    cb = DoctorCallback(tmp_path)
    for inputs, targets in batches:  # as on_after_backward calls it
        if not cb._probe_full:
            cb._grow_probe(mon, inputs, targets)
    mon.close()
    return cb, mon


def test_a_batch_of_padded_sequences_gives_a_probe_of_whole_sequences(tmp_path):
    """The first batch of (sequences, lengths) alone: whole sequences up to probe_rows frames,
    their lengths and their flattened targets, paired frame by frame."""
    x, lengths = torch.randn(12, 50, 3), torch.arange(39, 51)
    y = torch.arange(12 * 50)
    later = ((torch.randn(4, 7, 3), torch.full((4,), 7)), torch.zeros(28, dtype=torch.long))
    cb, mon = _grow(tmp_path, _Seq(), [((x, lengths), y), later])
    (px, plen), py = mon._probe_x, mon._probe_y
    assert cb._probe_full and px.shape == (5, 50, 3)  # 256 frames // 50 = 5 sequences
    assert torch.equal(px, x[:5]) and torch.equal(plen, lengths[:5])
    assert torch.equal(py, y[: 5 * 50])


def test_a_recurrent_probe_is_cut_to_a_few_frames(tmp_path):
    """Through recurrent layers the double backward grows with the time steps: one sequence, cut
    to PROBE_FRAMES_RECURRENT steps, lengths clamped, targets (B, T) cut alike."""
    from trainlab.doctor.callback import PROBE_FRAMES_RECURRENT as F

    x, lengths = torch.randn(4, 300, 3), torch.tensor([300, 290, 10, 5])
    y = torch.arange(4 * 300).reshape(4, 300)
    _, mon = _grow(tmp_path, _Seq(recurrent=True), [((x, lengths), y)])
    (px, plen), py = mon._probe_x, mon._probe_y
    assert px.shape == (1, F, 3) and plen.tolist() == [F]
    assert torch.equal(py, y[:1, :F])


def test_a_batch_in_another_layout_is_the_whole_probe(tmp_path):
    """Inputs of several tensors that are not (sequences, lengths): kept whole, targets too."""
    a, b, y = torch.randn(6, 3), torch.randn(6, 3), torch.randint(0, 2, (6,))
    _, mon = _grow(tmp_path, _Seq(), [((a, b), y)])
    assert torch.equal(mon._probe_x[0], a) and torch.equal(mon._probe_y, y)
