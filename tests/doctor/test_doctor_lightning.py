"""The Lightning callback on a tiny LightningModule, on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.doctor import examine, read_records

L = pytest.importorskip("lightning")


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.slow
def test_lightning_callback_writes_records_the_doctor_reads(tmp_path):
    from trainlab.doctor.lightning import DoctorLightning

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    trainer = L.Trainer(
        max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[DoctorLightning(tmp_path / "run", loss_fn=nn.functional.cross_entropy,
                                   tensorboard=False)],
    )  # fmt: skip
    trainer.fit(Tiny(), loader, loader)
    r = read_records(tmp_path / "run")
    assert r.ended and r.last_step == 32 and len(r.epochs) == 4
    assert {"train_loss", "val_loss"} <= set(r.epochs[-1])
    assert r.curvatures and r.probes and r.baselines
    assert all(s.get("loss") is not None for s in r.steps)
    assert examine(tmp_path / "run").cause == "healthy"
