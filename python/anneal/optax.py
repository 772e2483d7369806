"""optax / JAX: the served learning rate fed to a jitted update from the
host, the way optax's own answer to "change the LR without recompiling"
works (optax.inject_hyperparams: the LR is a value in the optimizer state,
not a constant baked into the compiled step).

    import optax, anneal.optax
    lr = anneal.optax.HostSchedule("run-7")
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lr(0))
    state = tx.init(params)
    for step in range(steps):
        state.hyperparams["learning_rate"] = lr(step)   # on the host
        params, state = train_step(params, state, batch)  # jitted

HostSchedule prefetches a window of steps in the background, like
AnnealLR, so lr(step) is a list lookup. It must be called on the host: a
traced step (inside jit, grad or vmap) has no value to look up, so it
raises TypeError instead of silently compiling a constant. Passing it as
an optax schedule (`optax.sgd(learning_rate=lr)`) would call it under jit:
use inject_hyperparams as above.

Inside the compiled step the LR is whatever dtype the optimizer state
holds (float32 by default in JAX): the served float64 LR is rounded to
float32 there (relative error up to 2^-24, about 6e-8).
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

from anneal.client import Client, schedule_name
from anneal.results import StepRange
from anneal.window import Backoff, Prefetcher


def _is_traced(value: Any) -> bool:
    """Whether `value` is a JAX tracer (it has no concrete value)."""
    return any(c.__name__.endswith("Tracer") for c in type(value).__mro__)


class HostSchedule:
    """lr(step) of schedule `schedule`, as a Python float, from a window
    prefetched in the background (window steps, refreshed after half)."""

    def __init__(self, schedule: str, *, client: Optional[Client] = None,
                 target: Optional[str] = None, window: int = 256,
                 batch_size: Optional[int] = None, rpc_timeout: float = 5.0,
                 backoff: Backoff = Backoff(),
                 block_timeout: Optional[float] = None) -> None:
        self._own_client = client is None
        self.client = client if client is not None else Client(target)
        self.schedule = schedule_name(schedule)
        self.batch_size = batch_size
        self.rpc_timeout = rpc_timeout
        self.client.get(self.schedule, timeout=rpc_timeout)  # exists?
        ref = weakref.ref(self)

        def fetch(start: int, count: int) -> StepRange:
            me = ref()
            if me is None:
                raise RuntimeError("HostSchedule was collected")
            return me.client.evaluate_range(
                me.schedule, start, count, batch_size=me.batch_size,
                inspect_only=False, timeout=me.rpc_timeout).as_lists()
        self._prefetcher = Prefetcher(fetch, window=window,
                                      refresh_after=window // 2,
                                      backoff=backoff,
                                      block_timeout=block_timeout,
                                      describe="anneal %s" % self.schedule)
        self._range: Optional[StepRange] = None
        self.revision: Optional[int] = None

    def __call__(self, step: Any) -> float:
        if _is_traced(step):
            raise TypeError(
                "anneal.optax.HostSchedule was called with a traced step "
                "(inside jit, grad or vmap); it looks the LR up on the host. "
                "Use optax.inject_hyperparams and set "
                "state.hyperparams['learning_rate'] = lr(step) between "
                "jitted steps")
        t = int(step)
        r = self._prefetcher.ensure(t, self._range)
        self._range = r
        if r.revision is not None:
            self.revision = r.revision
        return r.lr[t - r.start_step]

    def close(self) -> None:
        """Stops the background fetches (and the client, if it made one)."""
        self._prefetcher.close()
        if self._own_client:
            self.client.close()

    def __enter__(self) -> "HostSchedule":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
