"""Peak memory of ``trainlab phoneme train`` on a full-size data set (1,229,932 x 429 float32, 2.1 GB).

Writes synthetic data in the competition's exact layout and size (train 1,229,932 rows, test
451,552 rows, utterances whose rows overlap as in the real files, no index, so boundaries are
recovered) to a temporary folder, trains a preset (``--model``; default: the default preset) for
one epoch through the command line in a child process, and reports the child's peak resident set size next to the size of one
float32 copy of the training features. The bar: under 4 GB, i.e. the features are memory-mapped
(their pages count once in the RSS) and never copied; what the RSS holds beyond the file's pages
is PyTorch's own runtime and working buffers (about 0.8-1.2 GiB of anonymous memory with the
crnn default), not data.
The test rows are read only after the training rows are unmapped. The temporary folder is deleted.

    python benchmarks/bench_phoneme_memory.py [--model tcn] [--rows 1229932] [--test-rows 451552]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainlab.phoneme._synth import write_synthetic_timit
from trainlab.phoneme.config import DEFAULT_PRESET

CHILD = """
import sys
from trainlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_229_932)
    ap.add_argument("--test-rows", type=int, default=451_552)
    ap.add_argument("--model", default=DEFAULT_PRESET, help=f"preset (default {DEFAULT_PRESET})")
    ap.add_argument("--batch", type=int, default=None, help="frames per step (MLP presets)")
    ap.add_argument(
        "--dir", default=None, help="where to put the temporary data (default: system temp)"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="phoneme_mem_", dir=args.dir))
    try:
        t0 = time.perf_counter()
        data = write_synthetic_timit(tmp / "data", args.rows, args.test_rows, mean_length=300)
        size = (data / "train_11.npy").stat().st_size
        print(f"wrote {args.rows:,} + {args.test_rows:,} rows ({size / 2**30:.2f} GiB of training "
              f"features) in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        cfg = tmp / "bench.toml"
        batch = "" if args.batch is None else f"batch_size = {args.batch}\n"
        cfg.write_text(f"epochs = 1\nthreads = 2\n{batch}")
        cmd = [sys.executable, "-c", CHILD, "phoneme", "train", "--data", str(data),
               "--out", str(tmp / "run"), "--model", args.model, "--config", str(cfg), "--quiet"]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: kB
        metrics = json.loads((tmp / "run" / "metrics.json").read_text())
        print(f"{args.model}: trained 1 epoch on {metrics['train_frames']:,} frames, validated on "
              f"{metrics['val_frames']:,}, predicted {metrics.get('test_frames', 0):,} test frames "
              f"in {seconds:.0f} s")  # fmt: skip
        print(f"peak RSS {peak / 2**30:.2f} GiB = {peak / size:.2f} x one float32 copy of the "
              f"training features ({size / 2**30:.2f} GiB); bar: < 4 GB -> "
              f"{'PASS' if peak < 4e9 else 'FAIL'}")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
