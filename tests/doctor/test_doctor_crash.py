"""Records survive a killed process: SIGKILL mid-run, the records read back, the doctor runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainlab.cli import main
from trainlab.doctor import examine, read_records

SCRIPT = """
import sys, torch
from torch import nn
from trainlab.doctor import Monitor
torch.set_num_threads(1)
torch.manual_seed(0)
x, y = torch.randn(256, 8), torch.randint(0, 2, (256,))
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
mon = Monitor(model, opt, sys.argv[1], loss_fn=nn.functional.cross_entropy,
              probe=(x[:64], y[:64]), every=1, curvature_every=20, tensorboard=False)
step = 0
while True:  # until killed
    i = (step * 32) % 256
    loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
    opt.zero_grad(); loss.backward(); mon.step(loss); opt.step()
    step += 1
    if step == 50:
        print("ready", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_records_survive_sigkill_and_the_doctor_reads_them(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    records = read_records(run)
    assert records.status == "running or killed" and not records.ended
    assert len(records.steps) >= 49 and records.probes and records.curvatures
    assert main(["doctor", str(run), "--no-plot"]) == 0
    findings = json.loads((run / "doctor.json").read_text())["findings"]
    assert findings and findings[0]["cause"]

    # the write a kill interrupts leaves a cut last line: skipped, and said so
    path = run / "doctor.jsonl"
    path.write_text(path.read_text() + '{"kind": "step", "step": 99999, "grad": [0.1, ')
    report = examine(run)
    assert report.records.truncated and "last line cut" in report.summary()
    assert report.records.last_step < 99999
