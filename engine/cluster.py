"""Dask: where tasks run. The one place that creates clusters and clients.

``cluster.kind``:

- ``none``: no client; tasks run in this process (a small thread pool).
- ``local``: a :class:`distributed.LocalCluster` of ``n_workers`` x ``threads_per_worker``.
- ``local_cuda``: a :class:`dask_cuda.LocalCUDACluster` (one worker per GPU).
- ``address`` (or ``cluster.address`` set): join an existing scheduler.

Library functions never create a client: they take ``client=None`` and fall back to in-process execution.
Stages open one with :func:`cluster_client` at the edge::

    with cluster_client(cfg.cluster) as client:
        results = run_tasks(fn, tasks, {"X": X}, client=client)
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from engine import console
from engine.errors import ConfigError, TridentError

LOG = console.LOG


def _address(cfg: Any) -> str | None:
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg) and OmegaConf.is_missing(cfg, "address"):
            return None
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    a = getattr(cfg, "address", None)
    return str(a) if a else None


def _kind(cfg: Any) -> str:
    kind = getattr(cfg, "kind", "none")
    kind = str(getattr(kind, "value", kind) or "none")
    address = _address(cfg)
    if address and kind in ("none", "address"):
        return "address"
    if address and kind in ("local", "local_cuda"):
        raise ConfigError(f"cluster.address={address!r} joins an existing scheduler, but cluster.kind={kind} "
                          "starts a new one; choose one (cluster=address or drop cluster.address)")
    if kind not in ("none", "local", "local_cuda", "address"):
        raise ConfigError(f"cluster.kind: expected none, local, local_cuda or address, got {kind!r}")
    return kind


def describe_client(client: Any, kind: str = "address", n_jobs: int = 1) -> dict[str, Any]:
    """What the manifest says about an executor: kind, scheduler, workers and threads."""
    if client is None:
        return {"kind": "in-process", "workers": in_process_workers(n_jobs), "threads_per_task": int(n_jobs)}
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"kind": "dask", "cluster": kind, "scheduler": str(client.scheduler.address),
            "workers": len(workers), "threads": int(sum(int(w.get("nthreads", 1)) for w in workers.values()))}


@contextlib.contextmanager
def cluster_client(cfg: Any) -> Iterator[Any]:
    """A Dask client for ``cfg`` (the ``cluster`` config), or ``None`` for in-process execution.

    A cluster started here is closed on exit; a joined scheduler is left running.

    Raises
    ------
    ConfigError
        Contradictory settings, or ``cluster=address`` without ``cluster.address``.
    TridentError
        dask-cuda or a GPU missing for ``local_cuda``; the scheduler at ``cluster.address`` unreachable
        within ``cluster.timeout_s``.
    """
    kind = _kind(cfg)
    if kind == "none":
        yield None
        return
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR if not console.verbose() else logging.INFO)
    from distributed import Client

    timeout = float(getattr(cfg, "timeout_s", 10) or 10)
    if kind == "address":
        address = _address(cfg)
        if not address:
            raise ConfigError("cluster.address: set the scheduler address to join, e.g. "
                              "cluster.address=tcp://10.0.0.5:8786")
        try:
            client = Client(str(address), timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise TridentError(f"cluster.address: cannot reach the Dask scheduler at {address} within "
                               f"{timeout:g} s ({type(exc).__name__}: {exc}); start it or fix the address") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n_workers = getattr(cfg, "n_workers", None)
    threads = int(getattr(cfg, "threads_per_worker", 1) or 1)
    processes = bool(getattr(cfg, "processes", True))
    memory_limit = getattr(cfg, "memory_limit", None) or "auto"
    if kind == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=None if n_workers is None else int(n_workers), threads_per_worker=threads,
                               processes=processes, dashboard_address=None, memory_limit=memory_limit,
                               silence_logs=logging.ERROR)
    else:
        cluster = _local_cuda(n_workers, threads, memory_limit)
    try:
        client = Client(cluster, timeout=timeout)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _local_cuda(n_workers: Any, threads: int, memory_limit: Any) -> Any:
    try:
        from dask_cuda import LocalCUDACluster
    except Exception as exc:
        raise TridentError(f"cluster=local_cuda needs dask-cuda, which does not import ({exc}); install the "
                           "'gpu' extra (dask-cuda[cu12]) or use cluster=local") from exc
    from engine.backend import compat

    gpus = compat.nvml_gpu_count()
    if gpus == 0:
        raise TridentError("cluster=local_cuda needs an NVIDIA GPU, but NVML reports none; use cluster=local")
    import logging

    try:
        return LocalCUDACluster(n_workers=None if n_workers is None else int(n_workers),
                                threads_per_worker=threads, dashboard_address=None,
                                memory_limit=memory_limit, silence_logs=logging.ERROR)
    except Exception as exc:
        raise TridentError(f"cluster=local_cuda: LocalCUDACluster did not start ({type(exc).__name__}: {exc})") from exc


def in_process_workers(n_jobs: int) -> int:
    """How many tasks run side by side in-process: the usable cores divided by the threads per task."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(n_jobs)))


def run_tasks(fn: Callable[..., Any], tasks: Sequence[Any], shared: Mapping[str, Any] | None = None,
              client: Any = None, description: str = "tasks", n_jobs: int = 1) -> list[Any]:
    """``[fn(task, **shared) for task in tasks]``, in-process or as Dask tasks; results in task order.

    With a client, each value of ``shared`` (e.g. the training matrix) is scattered to the workers once
    and every task refers to it. Without one, tasks run on a thread pool of
    :func:`in_process_workers` threads (``fn`` pins its own thread count). A progress bar counts tasks.

    Raises
    ------
    Exception
        The first exception a task raised (the remaining tasks are cancelled).
    """
    shared = dict(shared or {})
    if not tasks:
        return []
    if client is None:
        workers = min(in_process_workers(n_jobs), len(tasks))
        if workers <= 1:
            return [fn(t, **shared) for t in console.track(tasks, description, total=len(tasks))]
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trident-task") as pool:
            futures = {pool.submit(fn, t, **shared): i for i, t in enumerate(tasks)}
            out: list[Any] = [None] * len(tasks)
            try:
                for f in console.track(as_completed(futures), description, total=len(tasks)):
                    out[futures[f]] = f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return out
    from distributed import as_completed as dask_completed

    handles = {k: client.scatter([v], broadcast=True, hash=False)[0] for k, v in shared.items()}
    futures = [client.submit(fn, t, **handles, pure=False) for t in tasks]
    try:
        for f in console.track(dask_completed(futures), description, total=len(futures)):
            if f.status == "error":
                f.result()  # raises the task's exception here
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.cancel(list(handles.values()))
