"""Fixtures for the report's tests: a small MNIST-format folder, a tiny report config."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` (uint8) as a gzip-compressed IDX file."""
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


@pytest.fixture
def mnist_folder(tmp_path: Path) -> Path:
    """An MNIST-format folder with 200 images: a bright square whose position is the label."""
    rng = np.random.default_rng(0)
    n = 200
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = 2 + 2 * (c // 5) * 5, 2 + 5 * (c % 5)
        images[i, r : r + 6, col : col + 4] = 250
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return folder


@pytest.fixture(scope="session")
def digits():
    """The report's default data (scikit-learn's bundled digits), loaded once."""
    from trainlab.report.data import load_report_data

    return load_report_data("digits")


@pytest.fixture(scope="module")
def measured(tmp_path_factory, digits):
    """``measured(module, cfg)``: a section's context on the digits and its measurement.

    The context writes into a fresh folder; the seed is set as the runner sets it.
    """
    from trainlab.report.config import ReportConfig
    from trainlab.report.context import SectionContext
    from trainlab.report.sections import SECTIONS
    from trainlab.seed import seed_everything

    def run(module, cfg):
        number = next(n for n, (key, _) in SECTIONS.items() if key == module.KEY)
        out = tmp_path_factory.mktemp(f"section{number}")
        config = ReportConfig(out=str(out), sections=[number], quick=True, device="cpu", quiet=True)
        ctx = SectionContext(
            config=config, out_dir=out, number=number, key=module.KEY, data=digits,
            log_fn=lambda _msg: None,
        )  # fmt: skip
        seed_everything(config.seed)
        return ctx, module.measure(ctx, cfg)

    return run


@pytest.fixture
def matplotlib_untouched(monkeypatch):
    """Fail if the code under test imports pyplot, calls ``matplotlib.use`` or changes rcParams."""
    import sys

    import matplotlib

    def use(*args, **kwargs):
        raise AssertionError("matplotlib.use() called")

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # importing it raises
    monkeypatch.setattr(matplotlib, "use", use)
    before = matplotlib.rcParams.copy()  # copies the backend setting without resolving it
    yield
    after = matplotlib.rcParams.copy()
    assert after["backend"] == before["backend"] and after == before


@pytest.fixture
def check_rendered(matplotlib_untouched):
    """``check_rendered(module, ctx, cfg, measurement)``: render, checking what every section needs.

    Rendering must leave matplotlib as it found it, keep the measurement's numbers unchanged, and
    produce prose, a verdict sentence, tables with a cell per column and real PNGs.

    Returns:
        The :class:`~trainlab.report.result.Rendered`.
    """
    import json

    def check(module, ctx, cfg, m):
        numbers = json.dumps(m.numbers(), sort_keys=True)
        rendered = module.render(ctx, cfg, m)
        assert json.dumps(m.numbers(), sort_keys=True) == numbers
        assert rendered.experiment and rendered.verdict.text.endswith(".")
        for table in rendered.tables:
            assert table.rows and all(len(row) == len(table.columns) for row in table.rows)
        assert rendered.tables and rendered.figures
        for fig in rendered.figures:
            assert fig.file.startswith(f"{ctx.number}-") and fig.caption
            assert (ctx.out_dir / fig.file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return rendered

    return check
