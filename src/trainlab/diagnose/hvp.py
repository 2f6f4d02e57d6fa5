"""Hessian-vector products for any model, loss and batch, over all parameters or a chosen subset.

The lecture's tool for telling a saddle point from a local minimum is the Hessian ``H`` of the loss
at the point where training stalled. For a network the Hessian has ``n²`` entries, so everything in
:mod:`trainlab.diagnose` touches it only through products ``H v`` (Pearlmutter 1994), computed by
double backward: ``H v = ∇_θ (∇_θ L(θ) · v)``. The gradient's graph is built once per point and
reused by every product, so one product costs one extra backward pass (the trick PyHessian uses).

An :class:`Objective` is "the loss as a function of a flat parameter vector θ", anchored at a
current point. :class:`ModelObjective` wraps a model, a loss and one fixed batch (evaluation or
training mode, see :mod:`trainlab.diagnose._modes`); :class:`FunctionObjective` wraps a plain
function such as ``x² − y²`` so analytic cases go through the same code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from trainlab.diagnose._modes import Mode, buffer_copies, check_mode, module_mode
from trainlab.errors import TrainlabError


class Objective:
    """A twice-differentiable scalar function of a flat vector θ, anchored at a current point.

    Subclasses implement :meth:`_loss_tensor`. The gradient's autograd graph at the current point
    is cached, so :meth:`hvp` costs one backward pass; :attr:`num_hvp` counts the products made.
    """

    def __init__(self, theta: Tensor) -> None:
        if theta.ndim != 1 or theta.numel() == 0:
            raise ValueError(
                f"the point must be a non-empty 1-D tensor, got shape {tuple(theta.shape)}"
            )
        self._theta = theta.detach().clone()
        self._leaf: Tensor | None = None
        self._loss: Tensor | None = None
        self._grad: Tensor | None = None
        self.num_hvp = 0

    def _loss_tensor(self, theta: Tensor) -> Tensor:
        raise NotImplementedError

    # --- the point ---------------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        """The dimension ``n`` of θ (the Hessian is ``n × n``)."""
        return self._theta.numel()

    @property
    def dtype(self) -> torch.dtype:
        return self._theta.dtype

    @property
    def device(self) -> torch.device:
        return self._theta.device

    def point(self) -> Tensor:
        """A copy of the current point θ."""
        return self._theta.clone()

    def set_point(self, theta: Tensor) -> None:
        """Move the anchor to ``theta`` (the cached gradient graph is dropped)."""
        theta = torch.as_tensor(theta, dtype=self.dtype, device=self.device).reshape(-1)
        if theta.numel() != self.num_params:
            raise ValueError(f"expected {self.num_params} values, got {theta.numel()}")
        self._theta = theta.detach().clone()
        self.release()

    def release(self) -> None:
        """Free the cached gradient graph (it is rebuilt on the next product)."""
        self._leaf = self._loss = self._grad = None

    # --- values ------------------------------------------------------------------------------
    def loss(self, theta: Tensor | None = None) -> float:
        """The loss at the current point, or at ``theta`` (the anchor does not move)."""
        if theta is None:
            self._build()
            assert self._loss is not None
            return float(self._loss.detach())
        theta = torch.as_tensor(theta, dtype=self.dtype, device=self.device).reshape(-1)
        with torch.no_grad():
            return float(self._checked_loss(theta))

    def gradient(self) -> Tensor:
        """``∇L(θ)`` at the current point, shape ``(n,)``."""
        self._build()
        assert self._grad is not None
        return self._grad.detach().clone()

    def hvp(self, v: Tensor) -> Tensor:
        """The Hessian-vector product ``H v`` at the current point.

        Args:
            v: a vector of shape ``(n,)`` (any float dtype; cast to the objective's dtype).

        Returns:
            ``H v``, shape ``(n,)``, in the objective's dtype.
        """
        v = torch.as_tensor(v, device=self.device).to(self.dtype).reshape(-1)
        if v.numel() != self.num_params:
            raise ValueError(f"expected a vector of {self.num_params} values, got {v.numel()}")
        self._build()
        self.num_hvp += 1
        assert self._grad is not None and self._leaf is not None
        if not self._grad.requires_grad:  # the loss is linear (or constant) in θ
            return torch.zeros_like(self._theta)
        (hv,) = torch.autograd.grad(
            self._grad, self._leaf, grad_outputs=v, retain_graph=True, allow_unused=True
        )
        return torch.zeros_like(self._theta) if hv is None else hv.detach()

    def hessian(self, chunk_size: int = 128) -> Tensor:
        """The exact Hessian ``(n, n)``, column block by column block from batched products.

        Args:
            chunk_size: how many products to batch through one vectorised backward pass.

        Returns:
            The symmetrised Hessian ``(H + Hᵀ) / 2`` in the objective's dtype.
        """
        n = self.num_params
        self._build()
        assert self._grad is not None and self._leaf is not None
        if not self._grad.requires_grad:
            return torch.zeros(n, n, dtype=self.dtype, device=self.device)
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        cols = []
        batched = True
        for start in range(0, n, chunk_size):
            block = eye[start : start + chunk_size]
            if batched:
                try:
                    (hb,) = torch.autograd.grad(
                        self._grad, self._leaf, grad_outputs=block, retain_graph=True,
                        is_grads_batched=True, allow_unused=True,
                    )  # fmt: skip
                    self.num_hvp += block.shape[0]
                    cols.append(torch.zeros_like(block) if hb is None else hb.detach())
                    continue
                except RuntimeError:  # an op without a batching rule: one product at a time
                    batched = False
            cols.append(torch.stack([self.hvp(e) for e in block]))
        h = torch.cat(cols)  # (n, n): row i is H e_i
        return (h + h.T) / 2

    # --- machinery ---------------------------------------------------------------------------
    def _checked_loss(self, theta: Tensor) -> Tensor:
        loss = self._loss_tensor(theta)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise TrainlabError(f"the loss must be a scalar (the mean over the batch), got {shape}")
        loss = loss.reshape(())
        if not torch.isfinite(loss.detach()):
            raise TrainlabError(f"the loss is not finite ({float(loss.detach())}) at this point")
        return loss

    def _build(self) -> None:
        if self._grad is not None:
            return
        leaf = self._theta.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = self._checked_loss(leaf)
            if loss.requires_grad:
                (g,) = torch.autograd.grad(loss, leaf, create_graph=True, allow_unused=True)
            else:
                g = None
        self._leaf, self._loss = leaf, loss
        self._grad = torch.zeros_like(leaf) if g is None else g


class FunctionObjective(Objective):
    """A plain function ``f(θ) -> scalar`` at a point, e.g. ``x² − y²`` at the origin.

    Args:
        fn: maps a 1-D tensor θ to a scalar tensor, differentiably.
        point: the point θ to analyse (float64 recommended for analytic checks).
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], point: Tensor | Sequence[float]) -> None:
        theta = torch.as_tensor(point)
        if not theta.is_floating_point():
            theta = theta.to(torch.get_default_dtype())
        super().__init__(theta.reshape(-1))
        self.fn = fn

    def _loss_tensor(self, theta: Tensor) -> Tensor:
        return self.fn(theta)


def select_parameters(
    model: torch.nn.Module, params: str | Sequence[str] | None = None
) -> list[tuple[str, Tensor]]:
    """The trainable parameters to analyse, by name prefix.

    Args:
        model: the network.
        params: ``None`` for all trainable parameters, or one or more name prefixes: a prefix
            matches a parameter whose name equals it or continues it at a dot (``"net.0"``
            matches ``net.0.weight`` and ``net.0.bias``, not ``net.01.weight``). A string may hold
            several prefixes separated by commas.

    Returns:
        ``[(name, parameter), ...]`` in the model's order.
    """
    named: list[tuple[str, Tensor]] = [
        (n, p) for n, p in model.named_parameters() if p.requires_grad
    ]
    if params is None:
        chosen = named
    else:
        prefixes = (
            [s.strip() for s in params.split(",")] if isinstance(params, str) else list(params)
        )
        prefixes = [p.rstrip(".") for p in prefixes if p.strip()]

        def matches(name: str) -> bool:
            return any(name == p or name.startswith(p + ".") for p in prefixes)

        chosen = [(n, p) for n, p in named if matches(n)]
        if not chosen:
            layers = sorted({n.rsplit(".", 1)[0] for n, _ in named if "." in n})
            raise TrainlabError(
                f"no trainable parameter matches {', '.join(map(repr, prefixes))}; "
                f"parameter groups in this model: {', '.join(layers) or '(none)'}"
            )
    if not chosen:
        raise TrainlabError("the model has no trainable parameters to analyse")
    return chosen


class ModelObjective(Objective):
    """A model's loss on one fixed batch as a function of (some of) its parameters.

    The model's own parameters and buffers are never modified: the loss at θ is computed with
    ``torch.func.functional_call``, substituting θ for the chosen parameters.

    Args:
        model: the network (any ``nn.Module``).
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` (mean over the batch).
        inputs: a tensor, or a tuple/list of tensors passed as ``model(*inputs)``.
        targets: the targets for ``loss_fn``.
        params: which parameters to analyse (see :func:`select_parameters`); ``None`` = all.
        mode: ``"eval"`` (default) or ``"train"``, see :mod:`trainlab.diagnose._modes`.
        dtype: compute in this dtype (e.g. ``torch.float64`` for exact checks); the model is
            copied for it, the original is untouched. ``None`` keeps the model's dtype.
        seed: the dropout seed used in training mode.
        weight_decay: analyse ``loss + ½ · weight_decay · ‖θ‖²`` (θ the chosen parameters), the
            objective SGD with ``weight_decay`` minimises; it adds ``weight_decay`` to every
            Hessian eigenvalue.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        inputs: Any,
        targets: Any,
        *,
        params: str | Sequence[str] | None = None,
        mode: Mode | str = "eval",
        dtype: torch.dtype | None = None,
        seed: int = 0,
        weight_decay: float = 0.0,
    ) -> None:
        self.mode: Mode = check_mode(mode)
        self.seed = seed
        self.weight_decay = float(weight_decay)
        first = next(model.parameters(), None)
        if first is None:
            raise TrainlabError("the model has no parameters to analyse")
        if dtype is not None and dtype != first.dtype:
            model = copy.deepcopy(model).to(dtype)
        self.model = model
        self.loss_fn = loss_fn
        device = first.device
        cast = dtype if dtype is not None else first.dtype
        self.inputs = _to(inputs, device, cast)
        self.targets = _to(targets, device, cast)
        chosen = select_parameters(model, params)
        self.names = [n for n, _ in chosen]
        self.shapes = [tuple(p.shape) for _, p in chosen]
        self._numels = [p.numel() for _, p in chosen]
        chosen_set = set(self.names)
        # the parameters held fixed enter the call detached, so no graph is built through them
        self._fixed = {n: p.detach() for n, p in model.named_parameters() if n not in chosen_set}
        self._wrapper = _LossOf(model, loss_fn, self.inputs, self.targets)
        super().__init__(torch.cat([p.detach().reshape(-1) for _, p in chosen]))

    def _loss_tensor(self, theta: Tensor) -> Tensor:
        parts = torch.split(theta, self._numels)
        tensors = {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}
        tensors.update(self._fixed)
        tensors.update(buffer_copies(self.model, self.mode))
        with module_mode(self.model, self.mode, self.seed):
            # the loss runs inside the substitution too: a loss that adds a penalty computed
            # from model.parameters() then sees θ, not the stored weights
            loss = functional_call(self._wrapper, {f"model.{k}": v for k, v in tensors.items()}, ())
        if self.weight_decay:
            loss = loss + 0.5 * self.weight_decay * theta.pow(2).sum()
        return loss

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into ``{parameter name: tensor}`` of the chosen parameters."""
        parts = torch.split(torch.as_tensor(theta).reshape(-1), self._numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}

    def write_to(self, model: torch.nn.Module, theta: Tensor | None = None) -> None:
        """Copy θ (default: the current point) into ``model``'s parameters of the same names."""
        theta = self._theta if theta is None else theta
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.unflatten(theta).items():
                params[name].copy_(value.to(params[name].dtype))


class _LossOf(torch.nn.Module):
    """``loss_fn(model(*inputs), targets)`` as a module, so one ``functional_call`` covers both."""

    def __init__(
        self, model: torch.nn.Module, loss_fn: Callable, inputs: Any, targets: Any
    ) -> None:
        super().__init__()
        self.model = model
        self._loss_fn = [loss_fn]  # in a list: a loss module must not become a submodule
        self._inputs, self._targets = inputs, targets

    def forward(self) -> Tensor:
        x = self._inputs
        outputs = self.model(*x) if isinstance(x, (tuple, list)) else self.model(x)
        return self._loss_fn[0](outputs, self._targets)


def _to(x: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move tensors (in tuples/lists too) to ``device``; floating ones to ``dtype``."""
    if isinstance(x, Tensor):
        return x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(t, device, dtype) for t in x)
    return x


def hessian_vector_product(
    model: torch.nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Any,
    targets: Any,
    v: Tensor,
    *,
    params: str | Sequence[str] | None = None,
    mode: Mode | str = "eval",
    seed: int = 0,
) -> Tensor:
    """One Hessian-vector product ``H v`` of a model's loss on a batch (see :class:`ModelObjective`).

    Args:
        model, loss_fn, inputs, targets, params, mode, seed: as for :class:`ModelObjective`.
        v: a flat vector over the chosen parameters, in the order of ``named_parameters()``.

    Returns:
        ``H v`` as a flat tensor of the same length as ``v``.
    """
    obj = ModelObjective(model, loss_fn, inputs, targets, params=params, mode=mode, seed=seed)
    return obj.hvp(v)


def as_objective(
    source: Objective | Any,
    *,
    params: str | Sequence[str] | None = None,
    mode: Mode | str = "eval",
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> Objective:
    """An :class:`Objective` from an objective (returned as is) or a ``DiagnosisTarget``.

    Args:
        source: an :class:`Objective`, or a :class:`~trainlab.diagnose.target.DiagnosisTarget`
            (anything with ``model``, ``loss_fn``, ``inputs`` and ``targets``).
        params, mode, dtype, seed: as for :class:`ModelObjective` (targets only).
    """
    if isinstance(source, Objective):
        return source
    if all(hasattr(source, a) for a in ("model", "loss_fn", "inputs", "targets")):
        return ModelObjective(
            source.model, source.loss_fn, source.inputs, source.targets,
            params=params, mode=mode, dtype=dtype, seed=seed,
        )  # fmt: skip
    raise TypeError(f"expected an Objective or a DiagnosisTarget, got {type(source).__name__}")
