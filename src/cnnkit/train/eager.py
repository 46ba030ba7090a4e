"""torch optimizers that step without importing torch's compiler (``torch._dynamo``).

torch 2.x marks ``Optimizer.add_param_group``/``zero_grad``/``state_dict``/``load_state_dict``
"not to be compiled" with a wrapper that imports ``torch._dynamo`` on its first call, and its
``step`` wrapper imports it on every call. That import costs 1.5-2 s of a process's time (a
fifth of a short Keras-style program) although nothing is being compiled: torch.compile cannot
run before ``torch._dynamo`` is imported, so while it is absent, "not compiled" is what plain
eager execution already does.

:func:`build_eager` keeps torch's behaviour exactly while the compiler is absent and hands back to
torch's own wrappers as soon as it is loaded (by ``torch.compile``, or anyone):

- the four wrapped methods get torch's cache slot filled with a function that calls the
  method directly, or, once ``torch._dynamo`` is loaded, builds and caches torch's own
  "disabled" wrapper and uses it from then on;
- ``optimizer.step`` becomes the optimizer class's own update under ``torch.no_grad()`` (what
  torch's wrapper does for a non-differentiable optimizer), skipping the profiler record and
  the hook loop when no step hooks are registered.

Measured (cProfile of the video lesson's listing under cnnkit.keras, one thread): building
the first optimizer took 1.96 s (all of it ``import torch._dynamo``), now under 1 ms.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer

_COMPILER = "torch._dynamo"
_SLOT = "__dynamo_disable"  # where torch._compile._disable_dynamo caches its wrapper
_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _compiler_loaded() -> bool:
    return _COMPILER in sys.modules


def _until_compiler(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` called directly while torch's compiler is not loaded; torch's disabled
    wrapper (built once, then cached where torch caches it) when it is."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not _compiler_loaded():
            return method(*args, **kwargs)
        disabled = torch._dynamo.disable(method, recursive=True, wrapping=False)
        setattr(method, _SLOT, disabled)  # torch's own cache: later calls skip this function
        return disabled(*args, **kwargs)

    return call


@functools.cache
def _patch_optimizer_methods() -> bool:
    """Fill torch's cache slot of the four wrapped methods (once per process); False when
    this torch does not wrap them as expected (then nothing is changed)."""
    raws: list[Callable[..., Any]] = []
    for name in _METHODS:
        raw = getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None)
        if raw is None:
            return False
        raws.append(raw)
    for raw in raws:
        if not hasattr(raw, _SLOT) and not _compiler_loaded():
            setattr(raw, _SLOT, _until_compiler(raw))
    return True


def _has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    return bool(
        optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or torch_optimizer._global_optimizer_pre_hooks
        or torch_optimizer._global_optimizer_post_hooks
    )


def build_eager(
    factory: Callable[..., torch.optim.Optimizer], *args: Any, **kwargs: Any
) -> torch.optim.Optimizer:
    """``factory(*args, **kwargs)`` (a torch optimizer class, or a function building one, as
    :func:`~cnnkit.train.optim.make_optimizer` does), built and stepping without importing
    torch's compiler."""
    if not _patch_optimizer_methods():
        return factory(*args, **kwargs)
    optimizer = factory(*args, **kwargs)
    if optimizer.defaults.get("differentiable"):
        return optimizer
    hooked = type(optimizer).step  # torch's wrappers: profiler record, hooks, no_grad
    update = inspect.unwrap(hooked)  # the class's own update below them

    def step(closure: Callable[[], Any] | None = None) -> Any:
        if _compiler_loaded() or _has_step_hooks(optimizer):
            return hooked(optimizer, closure)
        with torch.no_grad():
            return update(optimizer, closure)

    optimizer.step = step  # type: ignore[method-assign]
    return optimizer
