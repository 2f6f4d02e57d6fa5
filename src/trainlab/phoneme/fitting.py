"""Training a phoneme run's network: one network, or an ensemble of independently trained members.

:func:`fit_network` trains one seeded network with the Trainer (:func:`trainlab.train.fit`).
:func:`fit_ensemble` trains ``config.members`` of them, member ``k`` a run of its own seeded with
``seed + k`` (its own initialisation, dropout and batch order) in ``training/member<k+1>/``, and
averages their probabilities (:class:`~trainlab.phoneme.models.Members`). On a CPU the members
train side by side in worker processes (:mod:`trainlab.phoneme.workers`), all at once, the cores
shared among them: a recurrent network's small matrix products gain less from a second thread
than a second network does from a core of its own (one LSTM network: 1.6x faster on two threads;
two networks side by side: 1.8x the work of one alone). Member 1 is exactly the run a single
network with the same seed would be, unless ``member_folds`` gives each member its own validation
fold (:func:`member_data`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainlab.distributed import is_main_process
from trainlab.distributed.env import detect_env
from trainlab.phoneme.batches import IGNORE, FrameBatches, UtteranceBatches, masked_accuracy
from trainlab.phoneme.config import PhonemeConfig, train_config
from trainlab.phoneme.models import FlatFrames, Members, build_model
from trainlab.phoneme.split import RunData, member_split
from trainlab.phoneme.workers import run_workers

if TYPE_CHECKING:
    from trainlab.train import History


@dataclass
class Fitted:
    """A trained network (an ensemble for several members) and each member's history."""

    net: torch.nn.Module
    histories: list[History]

    @property
    def history(self) -> History:
        """Member 1's history (the run's, for one network)."""
        return self.histories[0]


def member_config(cfg: PhonemeConfig, k: int) -> PhonemeConfig:
    """The settings of member ``k`` (0-based) alone: one network, seeded ``cfg.seed + k``."""
    return replace(cfg, members=1, seed=cfg.seed + k)


def member_data(cfg: PhonemeConfig, split: RunData, k: int) -> RunData:
    """The utterances member ``k`` (0-based) trains and validates on: its own validation fold
    with ``cfg.member_folds`` (:func:`~trainlab.phoneme.split.member_split`), else the run's."""
    return member_split(split, k, cfg.members) if cfg.member_folds else split


def member_dir(train_dir: Path, k: int) -> Path:
    """Where member ``k`` (0-based) of an ensemble checkpoints, inside the Trainer's folder."""
    return train_dir / f"member{k + 1}"


#: At most this many member processes share one core: more only adds memory, not speed.
MEMBERS_PER_CORE = 4


def parallel_workers(cfg: PhonemeConfig, device: torch.device) -> tuple[int, int]:
    """(worker processes, threads each) for training ``cfg``'s members.

    On a CPU with two or more cores (``cfg.threads`` when set), outside ``torchrun``: every member
    at once, a process each (up to :data:`MEMBERS_PER_CORE` per core, in rounds beyond), the cores
    shared out among them. Three members on two cores train as fast, member-epoch for member-epoch,
    as two do (25.5 s per epoch against 17 s for the pair, measured with the LSTM default), where
    a third member left to run alone afterwards would leave a core idle. Otherwise
    ``(1, cfg.threads)``: the members train one after another in this process (one accelerator,
    or a process group, serves them in turn).
    """
    cores = cfg.threads or _cpu_cores()
    if cfg.members < 2 or cores < 2 or device.type != "cpu" or detect_env().distributed:
        return 1, cfg.threads
    workers = min(cfg.members, MEMBERS_PER_CORE * cores)
    return workers, max(1, cores // workers)


def _cpu_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fit_network(
    cfg: PhonemeConfig,
    split: RunData,
    train_dir: Path,
    quiet: bool,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> tuple[torch.nn.Module, History]:
    """Build the network seeded with ``cfg.seed`` and train it, checkpointing in ``train_dir``.

    Sequence models cap oneDNN's kernel cache and trim the host heap as they go
    (:mod:`trainlab.train.heap`): their batches change shape every step, which otherwise grows a
    process's memory step after step.
    """
    from trainlab.train import fit
    from trainlab.train.heap import TrimHeap, limit_kernel_cache

    if cfg.sequence:
        limit_kernel_cache()

    torch.manual_seed(cfg.seed)
    net = build_model(cfg)
    model = FlatFrames(net) if cfg.sequence else net
    train_batches, val_batches = _batches(cfg, split)
    history = fit(
        model,
        torch.nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=cfg.label_smoothing),
        train_batches,
        val_batches,
        config=replace(
            train_config(
                cfg,
                train_dir,
                quiet=quiet,
                has_val=len(split.val_u) > 0,
                steps_per_epoch=len(train_batches),
            ),
            resume=resume,
        ),
        metrics={"acc": masked_accuracy},
        callbacks=[*callbacks, TrimHeap()] if cfg.sequence else callbacks,
    )
    return net, history


def fit_ensemble(
    cfg: PhonemeConfig,
    split: RunData,
    train_dir: Path,
    quiet: bool,
    resume: bool,
    data_root: Path,
    device: torch.device,
) -> Fitted:
    """Train ``cfg.members`` networks (in parallel processes where :func:`parallel_workers` says)
    and return them averaged; one network is returned as it is.

    Args:
        cfg: the run's settings.
        split: the prepared data (the workers prepare their own from ``data_root``, alike).
        train_dir: the Trainer's folder (``member<k>/`` inside it for each member).
        quiet: no per-epoch output (member 1 alone shows progress in any case).
        resume: continue each member from its last checkpoint.
        data_root: the data folder, for the worker processes.
        device: the device the run trains on.
    """
    if cfg.members == 1:
        net, history = fit_network(cfg, split, train_dir, quiet, resume)
        return Fitted(net, [history])
    workers, threads = parallel_workers(cfg, device)
    jobs = [
        (k, member_dir(train_dir, k), quiet or k > 0 or not is_main_process())
        for k in range(cfg.members)
    ]
    if workers == 1:
        results = [
            weights_and_history(
                fit_network(member_config(cfg, k), member_data(cfg, split, k), d, q, resume)
            )
            for k, d, q in jobs
        ]
    else:
        if not quiet and is_main_process():
            print(
                f"training {cfg.members} members in {workers} processes "
                f"({threads} thread{'s' * (threads > 1)} each); progress of member 1"
            )
        results = []
        for start in range(0, len(jobs), workers):
            results += run_workers(jobs[start : start + workers], cfg, data_root, resume, threads)
    ensemble = build_model(cfg)
    assert isinstance(ensemble, Members)
    for member, (weights, _) in zip(ensemble.members, results):
        member.load_state_dict(weights)
    return Fitted(ensemble.to(device), [h for _, h in results])


def weights_and_history(
    fitted: tuple[torch.nn.Module, History],
) -> tuple[dict[str, Any], History]:
    """A trained network's weights (detached, on the CPU) and its history."""
    net, history = fitted
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}, history


def _batches(cfg: PhonemeConfig, split: RunData) -> tuple[Any, Any]:
    """Training and validation batches (frames for the MLPs, whole utterances for the RNN)."""
    x, y, utts, train_u, val_u = split.x, split.y, split.utts, split.train_u, split.val_u
    train: Any
    val: Any
    if cfg.sequence:
        train = UtteranceBatches(
            x,
            y,
            utts,
            train_u,
            cfg.utterances_per_batch,
            cfg.rnn_frames,
            shuffle=True,
            chunk=cfg.chunk_frames,
        )
        # whole utterances, as many per batch as pieces in training: with twice as many, each
        # member's memory rose 0.13-0.24 GiB at the end of its epoch at full size, every member
        # at once, and the run went over 4 GB
        val = UtteranceBatches(x, y, utts, val_u, cfg.utterances_per_batch, cfg.rnn_frames)
    else:
        # shuffled by torch's default generator, which fit seeds and checkpoints (exact resume)
        train = FrameBatches(x, y, split.labelled_rows(train_u), cfg.batch_size, shuffle=True)
        val = FrameBatches(x, y, split.labelled_rows(val_u), max(1024, 4 * cfg.batch_size))
    return train, (val if len(val_u) else None)


__all__ = [
    "Fitted",
    "fit_ensemble",
    "fit_network",
    "member_config",
    "member_data",
    "member_dir",
    "parallel_workers",
    "weights_and_history",
]
