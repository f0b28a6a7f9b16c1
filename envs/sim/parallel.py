"""Serial or parallel: which compiled variant of a per-environment kernel a batch runs.

Kernels whose environments are independent (one ``prange`` loop over the batch
axis, no scratch shared between rows) are compiled twice from one Python
function: serially and with ``parallel=True``. Both run the same arithmetic
on each row, so a row's results are bit-identical whichever runs (a test holds
this); only the wall time differs.

Threads pay on a large batch of an idle machine and lose on a small batch or a
busy one (a thread waiting for a core stalls the whole batch). :class:`Switch`
decides per call site: serial below ``min_batch`` environments or with one
thread; above it, it times both variants now and then and keeps the faster.
``ROADEDGE_PARALLEL=0`` (or ``1``) forces the serial (or parallel) variant.

Threads: Numba's own ``workqueue`` pool, chosen at import unless
``NUMBA_THREADING_LAYER`` says otherwise. With the OpenMP layer, Numba shares
PyTorch's libgomp, whose idle workers *spin* after each parallel region; between
two env steps a worker kept a core busy doing nothing, and next to PyTorch on a
2-core machine an SB3 MaskablePPO rollout and update of 2,048 steps took 109 s
instead of 12.5 s (serial) or 10.2 s (``workqueue``), measured in one run. The
variable ``OMP_WAIT_POLICY=PASSIVE`` would stop the spinning only if set before
PyTorch loads libgomp, which a library cannot promise. ``workqueue`` must not be
entered from two threads at once: step one batch per thread at most.
"""

from __future__ import annotations

import os
import time
import types

import numba
from numba import njit

if "NUMBA_THREADING_LAYER" not in os.environ:  # see the module docstring
    numba.config.THREADING_LAYER = "workqueue"

#: Smallest batch for which the parallel variant is tried.
MIN_BATCH = 4
#: Chunks a kernel with per-row scratch splits its batch into (scratch is allocated per
#: chunk, so no two threads share it).
CHUNKS = 8
#: Calls between two trials of the variant not in use.
RETRY_EVERY = 200


#: name -> (serial, parallel) variants, for :class:`Switch` (which pickles by name).
KERNELS: dict[str, tuple] = {}


def compile_both(name: str, fn):
    """Register and return the serial and parallel compiled variants of ``fn`` (which
    loops over the batch with ``prange``)."""
    # Numba's disk cache keys a function by its qualified name, not by its compile
    # options: the parallel variant compiles a copy of ``fn`` under another name.
    twin = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__, fn.__closure__
    )
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    KERNELS[name] = (njit(cache=True)(fn), njit(cache=True, parallel=True)(twin))
    return KERNELS[name]


def _forced() -> bool | None:
    value = os.environ.get("ROADEDGE_PARALLEL", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


class Switch:
    """Chooses, call after call, the faster of a kernel's serial and parallel variants.

    Each call of :meth:`run` times the variant it ran (two clock reads). The
    parallel variant is first tried on the second call; from then on the variant
    with the lower moving average of seconds per call runs, and the other one
    is retried every ``RETRY_EVERY`` calls (the machine's load changes).
    """

    def __init__(self, kernel: str, batch_size: int):
        self.kernel, self.batch_size = kernel, batch_size
        self.variants = KERNELS[kernel]
        forced = _forced()
        threads = numba.config.NUMBA_NUM_THREADS
        if forced is not None:
            self.candidates = (1,) if forced else (0,)
        elif batch_size < MIN_BATCH or threads < 2:
            self.candidates = (0,)
        else:
            self.candidates = (0, 1)
        # the one variant when there is no choice to make
        self.only = self.variants[self.candidates[0]] if len(self.candidates) == 1 else None
        self.mean_s = [0.0, 0.0]
        self.runs = [0, 0]
        self.calls = 0

    def __getstate__(self):
        return {"kernel": self.kernel, "batch_size": self.batch_size}

    def __setstate__(self, state):
        self.__init__(state["kernel"], state["batch_size"])

    def choose(self) -> int:
        if len(self.candidates) == 1:
            return self.candidates[0]
        self.calls += 1
        for k in (0, 1):
            if self.runs[k] < 2:  # each variant's first call may load it from the cache
                return k
        best = 0 if self.mean_s[0] <= self.mean_s[1] else 1
        if self.calls % RETRY_EVERY == 0:
            return 1 - best
        return best

    def run(self, *args):
        if self.only is not None:
            return self.only(*args)
        k = self.choose()
        start = time.perf_counter()
        out = self.variants[k](*args)
        elapsed = time.perf_counter() - start
        n = self.runs[k]
        self.mean_s[k] = elapsed if n <= 1 else 0.8 * self.mean_s[k] + 0.2 * elapsed
        self.runs[k] = n + 1
        return out

    @property
    def parallel_share(self) -> float:
        """Share of the timed calls that ran the parallel variant."""
        total = self.runs[0] + self.runs[1]
        return self.runs[1] / total if total else 0.0


def switches(owner) -> dict[str, Switch]:
    """The switches kept on ``owner`` (a world), by kernel name."""
    return owner.__dict__.setdefault("_switches", {})


def run(owner, kernel: str, batch_size: int, *args):
    """Run registered ``kernel`` on ``args`` with the variant the switch kept on ``owner``
    (the world whose rows it computes; one switch per kernel) chooses."""
    kept = switches(owner)
    switch = kept.get(kernel)
    if switch is None:
        switch = kept[kernel] = Switch(kernel, batch_size)
    return switch.run(*args)
