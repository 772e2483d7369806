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

For offline use (a run that will not talk to the server, or an optax
schedule called under jit), `compiled_schedule` turns a spec, or the
first steps of a stored schedule, into a pure function of the step:

    lr = anneal.optax.compiled_schedule(10_000, spec=spec)
    tx = optax.sgd(learning_rate=lr)       # called under jit: a gather

It is a table of the engine's own LRs, not a second implementation of the
families, so every family (noise, plateau cuts already in a timeline, ...)
comes out as the server would serve it.
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

from anneal.client import Client, SpecLike, schedule_name, to_spec
from anneal.fallback import LocalTimeline, find_annealctl
from anneal.results import Segment, StepRange
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


def compiled_schedule(num_steps: int, *, spec: Optional[SpecLike] = None,
                      schedule: Optional[str] = None,
                      client: Optional[Client] = None,
                      annealctl: Optional[str] = None,
                      batch_size: Optional[int] = None,
                      xp: Any = None) -> Any:
    """A pure, jit-safe optax schedule `lr(count)` for steps [0, num_steps).

    Exactly one of `spec` (evaluated offline by annealctl, with the server's
    engine) and `schedule` (steps [0, num_steps) of a stored schedule, which
    the server then counts as served: they can no longer change). The LRs
    are computed once, in float64, and kept as a float32 table: under jit
    `lr(count)` is one gather, and no constant is baked into the program.

    float32 limits: each LR is the float64 value rounded to float32
    (relative error at most 2^-24, about 6e-8; LRs below 1.2e-38 lose
    precision and below 1.4e-45 become 0). `count` is clipped to
    [0, num_steps - 1]: past the table the LR holds its last value, so pass
    the run's length. optax's count is an int32, so num_steps <= 2^31 - 1;
    the table takes 4 bytes a step (1M steps: 4 MB of device memory).
    A change made on the server after this call is not seen (use
    HostSchedule for that). `xp`: the array module (default jax.numpy,
    else numpy).
    """
    import numpy as np
    if (spec is None) == (schedule is None):
        raise ValueError("give exactly one of spec= and schedule=")
    if not 1 <= int(num_steps) <= 2**31 - 1:
        raise ValueError("num_steps must be in [1, 2^31 - 1] (optax counts "
                         "in int32), got %r" % (num_steps,))
    num_steps = int(num_steps)
    if schedule is not None:
        own = client is None
        c = client if client is not None else Client()
        try:
            r = c.evaluate_range(schedule, 0, num_steps,
                                 batch_size=batch_size, inspect_only=False)
        finally:
            if own:
                c.close()
    else:
        path = find_annealctl(annealctl)
        if path is None:
            raise RuntimeError("compiled_schedule(spec=...) needs annealctl: "
                               "pass annealctl= or put it on PATH")
        segment = Segment(from_step=0, spec=to_spec(spec), time_origin=0,
                          cycle_offset=0, kind="CREATE", revision=1,
                          actor="", reason="")
        r = LocalTimeline([segment], path,
                          batch_size=batch_size).evaluate_range(0, num_steps)
    table64 = np.asarray(r.lr, dtype=np.float64)
    if xp is None:
        try:
            import jax.numpy as xp  # type: ignore[no-redef]
        except ImportError:  # JAX is not packaged in Debian 12
            xp = np
    table = xp.asarray(table64.astype(np.float32))
    last = num_steps - 1

    def lr(count: Any) -> Any:
        return table[xp.clip(count, 0, last)]
    lr.table = table  # type: ignore[attr-defined]
    return lr
