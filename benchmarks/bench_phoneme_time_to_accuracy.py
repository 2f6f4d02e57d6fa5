"""Time to accuracy: the course's sample design against trainlab's default, on the same split.

Both learn from the same training utterances and are scored every epoch on the same validation
utterances (those of member 1 of trainlab's default: :func:`trainlab.phoneme.fitting.member_data`
of the default's split), in one run, one after the other, each with the machine to itself (PyTorch's
default threads; ``--threads`` sets them):

* the course (ml2021spring-hw2 sample code): a per-frame ``Dataset`` and
  ``DataLoader(batch_size=64, shuffle=True)``, the 429-1024-512-128-39 sigmoid MLP,
  ``Adam(lr=1e-4)``, 20 epochs (``--course-epochs``; ``--course-budget-s`` stops it early, and the
  table says how many epochs it ran);
* trainlab's default: ``train_phoneme`` with the default preset, as ``trainlab phoneme train``
  runs it (its ensemble's members train side by side, the cores shared). The curve is member 1's
  per-epoch validation accuracy (``history.csv``, unsmoothed like the course's; the ensemble is
  scored once, at the end: the last point).

Writes ``curves.json``, ``time_to_accuracy.png`` and ``time_to_accuracy.md`` under ``--out``: when
trainlab first reaches the course's final accuracy, as a share of the course's total time, and
trainlab's own final accuracy (validation raw, validation smoothed, untouched hold-out) and time.

    python benchmarks/bench_phoneme_time_to_accuracy.py --data FEATURES_DIR --out OUT
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class CourseDataset(Dataset):
    """The sample code's TIMITDataset: one frame per ``__getitem__``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.data = torch.from_numpy(x).float()
        self.label = torch.LongTensor(y.astype(np.int64))

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[idx], self.label[idx]

    def __len__(self) -> int:
        return len(self.data)


def _split_rows(data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and validation rows and labels of member 1 of trainlab's default (the whole
    validation split, or member 1's own fold of it where the members train on folds)."""
    from trainlab.phoneme.config import DEFAULT_PRESET, preset
    from trainlab.phoneme.files import load_timit
    from trainlab.phoneme.fitting import member_data
    from trainlab.phoneme.split import prepare_data

    cfg = preset(DEFAULT_PRESET)
    split = member_data(cfg, prepare_data(load_timit(data), cfg.val_ratio, cfg.holdout_ratio,
                                          cfg.seed), 0)  # fmt: skip
    x = np.asarray(split.x)
    tr, va = split.labelled_rows(split.train_u), split.labelled_rows(split.val_u)
    return x[tr], split.y[tr], x[va], split.y[va]


def course_worker(data: str, out: Path, epochs: int, budget_s: float) -> None:
    """The sample code's loop; one JSON line per epoch: epoch, seconds so far, val accuracy."""
    from trainlab.phoneme.config import preset
    from trainlab.phoneme.models import build_model

    t0 = time.perf_counter()
    xt, yt, xv, yv = _split_rows(data)
    torch.manual_seed(0)
    model = build_model(preset("sample"))
    loader = DataLoader(CourseDataset(xt, yt), batch_size=64, shuffle=True)
    val_loader = DataLoader(CourseDataset(xv, yv), batch_size=64, shuffle=False)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    with open(out / "course.jsonl", "w") as f:
        for epoch in range(1, epochs + 1):
            model.train()
            for inputs, labels in loader:
                optimizer.zero_grad()
                criterion(model(inputs), labels).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for inputs, labels in val_loader:
                    correct += int((model(inputs).argmax(1) == labels).sum())
            rec = {
                "epoch": epoch,
                "seconds": time.perf_counter() - t0,
                "val_acc": correct / len(yv),
            }
            f.write(json.dumps(rec) + "\n")
            f.flush()
            if rec["seconds"] > budget_s:
                break


def trainlab_worker(data: str, out: Path) -> None:
    """trainlab's default run; its curve is read from the run's history afterwards."""
    from trainlab.phoneme import train_phoneme
    from trainlab.phoneme.config import DEFAULT_PRESET, preset

    t0 = time.perf_counter()
    metrics = train_phoneme(data, out / "trainlab", preset(DEFAULT_PRESET), quiet=True)
    metrics["wall_seconds"] = time.perf_counter() - t0
    (out / "trainlab_metrics.json").write_text(json.dumps(metrics, indent=1))


def _trainlab_curve(out: Path) -> list[dict[str, float]]:
    """Epoch, cumulative training+validation seconds and validation accuracy from history.csv."""
    with open(out / "trainlab" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    total, curve = 0.0, []
    for r in rows:
        total += float(r["time_s"])
        curve.append({"epoch": int(r["epoch"]), "seconds": total, "val_acc": float(r["val_acc"])})
    return curve


def summarise(
    course: list[dict[str, float]], ours: list[dict[str, float]], m: dict[str, Any]
) -> str:
    """The Markdown table of the run."""
    final = course[-1]["val_acc"]
    reach = next((p for p in ours if p["val_acc"] >= final), None)
    total = course[-1]["seconds"]
    lines = [
        "| design | epochs run | total s | final val acc | trainlab reaches course final at |",
        "| --- | --- | --- | --- | --- |",
        f"| course sample (DataLoader, batch 64, Adam 1e-4) | {len(course)} | {total:.0f} | "
        f"{final:.4f} | |",
        f"| trainlab default ({m['model']}{_member_note(m)}) | {len(ours)} | "
        f"{ours[-1]['seconds']:.0f} | "
        f"{ours[-1]['val_acc']:.4f} | "
        + (
            f"epoch {reach['epoch']}, {reach['seconds']:.0f} s = {reach['seconds'] / total:.2f} x "
            "the course's total"
            if reach
            else "never"
        )
        + " |",
        "",
        f"trainlab default, whole command: {m['wall_seconds']:.0f} s "
        f"({m['wall_seconds'] / total:.2f} x the course's total); validation (used for choices) "
        f"{m.get('val_accuracy', float('nan')):.4f} raw, "
        f"{m.get('smoothing', {}).get('val_accuracy', float('nan')):.4f} with "
        f"{m.get('smoothing', {}).get('method', '?')}; untouched hold-out "
        f"{m.get('untouched_accuracy', float('nan')):.4f} "
        f"({m.get('untouched_accuracy_raw', float('nan')):.4f} raw).",
    ]
    return "\n".join(lines)


def _member_note(m: dict[str, Any]) -> str:
    n = len(m.get("members", []))
    return f"; curve: member 1 of {n}, trained side by side" if n else ""


def plot(course: list[dict[str, float]], ours: list[dict[str, float]], path: Path) -> None:
    """Validation accuracy against seconds, both designs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, c in (("course sample", course), ("trainlab default", ours)):
        ax.plot([p["seconds"] for p in c], [p["val_acc"] for p in c], marker="o", label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("validation frame accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="featurized folder (train_11.npy & co.)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--course-epochs", type=int, default=20)
    ap.add_argument("--course-budget-s", type=float, default=float("inf"))
    ap.add_argument("--threads", type=int, default=0, help="PyTorch threads (0: its default)")
    ap.add_argument("--worker", choices=["course", "trainlab"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == "course":
        return course_worker(args.data, out, args.course_epochs, args.course_budget_s)
    if args.worker == "trainlab":
        return trainlab_worker(args.data, out)
    base = [sys.executable, __file__, *sys.argv[1:]]
    for worker in ("course", "trainlab"):
        if subprocess.run([*base, "--worker", worker]).returncode:
            sys.exit(f"the {worker} worker failed")
    course = [json.loads(line) for line in (out / "course.jsonl").read_text().splitlines()]
    ours = _trainlab_curve(out)
    metrics = json.loads((out / "trainlab_metrics.json").read_text())
    (out / "curves.json").write_text(json.dumps({"course": course, "trainlab": ours}, indent=1))
    plot(course, ours, out / "time_to_accuracy.png")
    table = summarise(course, ours, metrics)
    (out / "time_to_accuracy.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
