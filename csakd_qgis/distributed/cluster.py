"""Where tasks run: a Dask cluster (a scheduler address, or a LocalCluster of N worker processes) or in-process.

:func:`executor` gives the batch and block runners one small interface over both (submit with retries,
results as they complete, cancel), so the serial path needs no Dask at all and Dask is imported only when a
cluster is asked for (one clear CsakdError with the install command when it is missing).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from csakd_qgis.deps import python_executable
from csakd_qgis.errors import CsakdError

log = logging.getLogger("csakd_qgis.distributed")

INSTALL_HINT = 'python -m pip install "dask[distributed]>=2024.1"'


def require_distributed() -> Any:
    """The ``distributed`` module; CsakdError with the install command when Dask is not installed."""
    try:
        import distributed
    except ImportError:
        raise CsakdError("Running on several workers or a scheduler needs Dask, which is not installed: "
                         f"{INSTALL_HINT} (or run without --workers/--scheduler).") from None
    return distributed


class _Done:
    """A finished in-process task: its result or its exception, like a future."""

    def __init__(self, key: str, value: Any = None, error: BaseException | None = None) -> None:
        self.key, self._value, self._error = key, value, error

    def result(self) -> Any:
        """The task's return value; re-raises its exception."""
        if self._error is not None:
            raise self._error
        return self._value


class _Deferred:
    """An in-process task not yet run: ``fn(*args, **kwargs)`` with up to ``retries`` retries."""

    def __init__(self, key: str, fn: Callable, args: tuple, kwargs: dict, retries: int) -> None:
        self.key, self.fn, self.args, self.kwargs, self.retries = key, fn, args, kwargs, int(retries)

    def run(self) -> _Done:
        """Run it (again after an exception, up to ``retries`` times)."""
        for attempt in range(self.retries + 1):
            try:
                return _Done(self.key, self.fn(*self.args, **self.kwargs))
            except Exception as exc:  # noqa: BLE001 - returned like a failed future
                if attempt == self.retries:
                    return _Done(self.key, error=exc)
                log.info("%s failed (%s), retrying", self.key, exc)
        raise AssertionError("unreachable")


class SerialExecutor:
    """Runs each task in this process when its turn comes in :meth:`as_completed` (no Dask; one worker)."""

    workers = 1
    description = "this process"

    def submit(self, fn: Callable, *args: Any, key: str, retries: int = 0, **kwargs: Any) -> _Deferred:
        """A deferred task with a key (like a future's), retried up to ``retries`` times on an exception."""
        return _Deferred(key, fn, args, kwargs, retries)

    def as_completed(self, tasks: Iterable[_Deferred]) -> Iterator[_Done]:
        """Run the tasks one after the other, yielding each finished one."""
        for task in tasks:
            yield task.run()

    def cancel(self, tasks: Iterable[Any]) -> None:
        """Nothing to cancel: tasks not yet reached never run."""


class DaskExecutor:
    """Tasks on a ``distributed.Client`` (one future per task; Dask retries a task that raised)."""

    def __init__(self, client: Any, description: str) -> None:
        self.client, self.description = client, description
        self.workers = max(1, len(client.scheduler_info().get("workers", {})))

    def submit(self, fn: Callable, *args: Any, key: str, retries: int = 0, **kwargs: Any) -> Any:
        """A Dask future of ``fn(*args, **kwargs)`` with a readable, unique task key."""
        return self.client.submit(fn, *args, key=key, retries=retries, pure=False, **kwargs)

    def as_completed(self, tasks: Iterable[Any]) -> Iterator[Any]:
        """Futures in the order they finish."""
        from distributed import as_completed

        yield from as_completed(list(tasks))

    def cancel(self, tasks: Iterable[Any]) -> None:
        """Cancel the futures still pending (after an error or a cancel request)."""
        self.client.cancel(list(tasks))


def worker_python() -> str | None:
    """The Python interpreter for LocalCluster worker processes when ``sys.executable`` is not this Python
    (inside QGIS it is the QGIS binary or another ``python3`` on PATH); None when it is."""
    exe = python_executable()
    if sys.executable and Path(sys.executable) == exe:
        return None
    if not exe.is_file():
        raise CsakdError(f"No Python interpreter at {exe} for the Dask worker processes: run with 1 worker, or "
                         "start a Dask cluster and give its scheduler address.")
    return str(exe)


@contextlib.contextmanager
def local_cluster(workers: int, threads_per_worker: int = 1) -> Iterator[DaskExecutor]:
    """A LocalCluster of ``workers`` processes (one task at a time each with one thread), shut down on exit."""
    distributed = require_distributed()
    python = worker_python()
    if python is not None:  # spawned workers run this interpreter (sys.path travels with the spawn)
        multiprocessing.set_executable(python)
    try:
        cluster = distributed.LocalCluster(n_workers=int(workers), threads_per_worker=int(threads_per_worker),
                                           processes=True, dashboard_address=None, worker_dashboard_address=None,
                                           silence_logs=logging.WARNING)
    except (RuntimeError, OSError, TimeoutError) as exc:
        raise CsakdError(f"Could not start a local Dask cluster of {workers} worker processes ({exc}; worker "
                         f"Python: {python or sys.executable}): run with 1 worker or give a scheduler address.") from None
    with cluster, distributed.Client(cluster) as client:
        yield DaskExecutor(client, f"LocalCluster of {int(workers)} worker processes")


@contextlib.contextmanager
def executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[SerialExecutor | DaskExecutor]:
    """An executor: the cluster at ``scheduler``, a LocalCluster of ``workers`` processes (> 1), or in-process.

    LocalCluster workers are separate processes running one task at a time with one thread, so every pair or
    block gets a whole worker; a remote cluster is left running on exit.
    """
    if scheduler is None and (workers is None or int(workers) <= 1):
        yield SerialExecutor()
        return
    if scheduler is None:
        with local_cluster(int(workers)) as ex:
            log.info("Dask: %s", ex.description)
            yield ex
        return
    distributed = require_distributed()
    try:
        client = distributed.Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise CsakdError(f"Could not connect to the Dask scheduler '{scheduler}' ({exc}): check the address (e.g. "
                         "tcp://host:8786) and that the scheduler is running.") from None
    with client:
        ex = DaskExecutor(client, f"scheduler {scheduler}")
        log.info("Dask: %s (%d workers)", ex.description, ex.workers)
        yield ex


def task_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A task's entry-point options; ``threads`` unset: the Dask worker's thread count (inside a worker)."""
    opts = dict(options)
    if opts.get("threads") is None:
        try:
            from distributed import get_worker

            opts["threads"] = int(get_worker().state.nthreads)
        except (ImportError, ValueError):  # not in a Dask worker: the entry point's default
            opts["threads"] = None
    return opts


def task_key(prefix: str, index: int, name: str) -> str:
    """A unique, readable Dask key, e.g. 'csakd-pair-3-scene_a.tif-1a2b3c4d'."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in os.path.basename(str(name)))[:40]
    return f"{prefix}-{index}-{stem}-{uuid.uuid4().hex[:8]}"
