"""Peak memory of ``trainlab phoneme train`` on a full-size data set (1,229,932 x 429 float32, 2.1 GB).

Writes synthetic data in the competition's exact layout and size (train 1,229,932 rows, test
451,552 rows, utterances whose rows overlap as in the real files, no index, so boundaries are
recovered) to a temporary folder, trains a preset (``--model``; default: the default preset) for
one epoch through the command line in a child process, and reports the peak resident set size of
its largest process (its own ``VmHWM``) and, sampled every 0.2 s, the peak memory of the child and
its worker processes together (the ensemble's members train in processes of their own): their
anonymous memory summed, plus the file pages they share, such as the mapped features, counted
once; next to the size of one float32 copy of the training features. The bar: under 4 GB, i.e.
the features are memory-mapped and never copied; what the processes hold beyond the file's pages
is PyTorch's own runtime and working buffers (with the crnn default, about 0.3 GiB of anonymous
memory in the command and 0.55 GiB in each member), not data.
The test rows are read only after the training rows are unmapped. ``--mlebench`` writes MLE-bench's
layout instead: the ``--rows`` rows shuffled frame by frame and split 80 / 20 into
``timit_11/timit_11/train_11.npy`` and ``test_11.npy``, which the command chains back into
utterances. The temporary folder is deleted.

    python benchmarks/bench_phoneme_memory.py [--model tcn] [--rows 1229932] [--test-rows 451552]
        [--mlebench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from trainlab.phoneme._synth import write_synthetic_timit
from trainlab.phoneme.config import DEFAULT_PRESET

CHILD = """
import sys
from trainlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def _rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` in bytes ({} once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) * 1024 for k, v in (ln.split(":", 1) for ln in lines[1:])}


def _high_water(pid: int) -> int:
    """Bytes of ``pid``'s own peak resident set (``VmHWM``; 0 once the process is gone).

    Unlike ``getrusage``'s ``ru_maxrss``, this is not raised by the peak of the process that
    started it (Linux carries that across ``exec``).
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """Bytes that ``pid`` and all its descendants hold: each one's anonymous memory, plus the
    file pages mapped once (the largest process's; they map the same files).

    Summing each process's proportional set size would count the shared file pages of a process
    that exits between two reads twice; this does not. Also returns the largest process's own
    peak resident set (:func:`_high_water`).
    """
    anon = file = high = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        r = _rollup(p)
        if r:
            anon += r.get("Pss_Anon", 0) + r.get("Pss_Shmem", 0)
            file = max(file, r.get("Rss", 0) - r.get("Anonymous", 0))
            high = max(high, _high_water(p))
        todo += _children(p)
    return anon + file, high


def run_sampled(cmd: list[str], every: float = 0.2) -> tuple[int, int]:
    """Run ``cmd`` to completion (raising on failure); return the peak memory of its process tree
    and the largest process's own peak (:func:`tree_memory`)."""
    proc = subprocess.Popen(cmd)
    peak = high = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, high
        while not done.wait(every):
            together, largest = tree_memory(proc.pid)
            peak, high = max(peak, together), max(high, largest)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    done.set()
    sampler.join()
    if rc:
        raise subprocess.CalledProcessError(rc, cmd)
    return peak, high


def mlebench_layout(ordered: Path, root: Path, test_share: float = 0.2, seed: int = 0) -> Path:
    """Shuffle the rows of the data folder ``ordered`` into MLE-bench's layout under ``root``,
    block by block (never a second full copy in memory), and delete ``ordered``'s files."""
    x = np.load(ordered / "train_11.npy", mmap_mode="r")
    y = np.load(ordered / "train_label_11.npy")
    perm = np.random.default_rng(seed).permutation(len(x))
    cut = int((1 - test_share) * len(x))
    folder = root / "timit_11" / "timit_11"
    folder.mkdir(parents=True)
    for name, rows in (("train_11.npy", perm[:cut]), ("test_11.npy", perm[cut:])):
        out = np.lib.format.open_memmap(folder / name, "w+", np.float32, (len(rows), x.shape[1]))
        for lo in range(0, len(rows), 100_000):
            idx = rows[lo : lo + 100_000]
            ascending = np.argsort(idx)
            block = np.empty((len(idx), x.shape[1]), dtype=np.float32)
            block[ascending] = x[idx[ascending]]
            out[lo : lo + len(idx)] = block
        out.flush()
        del out
    np.save(folder / "train_label_11.npy", y[perm[:cut]])
    del x
    shutil.rmtree(ordered)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_229_932)
    ap.add_argument("--test-rows", type=int, default=451_552)
    ap.add_argument("--model", default=DEFAULT_PRESET, help=f"preset (default {DEFAULT_PRESET})")
    ap.add_argument("--batch", type=int, default=None, help="frames per step (MLP presets)")
    ap.add_argument("--mlebench", action="store_true", help="MLE-bench's shuffled layout")
    ap.add_argument(
        "--dir", default=None, help="where to put the temporary data (default: system temp)"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="phoneme_mem_", dir=args.dir))
    try:
        t0 = time.perf_counter()
        data = write_synthetic_timit(tmp / "data", args.rows, args.test_rows, mean_length=300)
        if args.mlebench:
            data = mlebench_layout(data, tmp / "mlebench")
        train = next(data.rglob("train_11.npy"))
        size = train.stat().st_size
        print(f"wrote {train} and its test rows ({size / 2**30:.2f} GiB of training features) in "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        cfg = tmp / "bench.toml"
        batch = "" if args.batch is None else f"batch_size = {args.batch}\n"
        cfg.write_text(f"epochs = 1\nthreads = 2\n{batch}")
        cmd = [sys.executable, "-c", CHILD, "phoneme", "train", "--data", str(data),
               "--out", str(tmp / "run"), "--model", args.model, "--config", str(cfg), "--quiet"]  # fmt: skip
        t0 = time.perf_counter()
        together, peak = run_sampled(cmd)
        seconds = time.perf_counter() - t0
        metrics = json.loads((tmp / "run" / "metrics.json").read_text())
        print(f"{args.model}: trained 1 epoch on {metrics['train_frames']:,} frames, validated on "
              f"{metrics['val_frames']:,}, predicted {metrics.get('test_frames', 0):,} test frames "
              f"in {seconds:.0f} s")  # fmt: skip
        total = max(peak, together)
        print(f"peak RSS of the largest process {peak / 2**30:.2f} GiB; peak of all its "
              f"processes together {together / 2**30:.2f} GiB = {total / size:.2f} x one float32 copy "
              f"of the training features ({size / 2**30:.2f} GiB); bar: < 4 GB -> "
              f"{'PASS' if total < 4e9 else 'FAIL'}")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
