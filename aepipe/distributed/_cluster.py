"""Connecting to a cluster and scoping worker settings to one call."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from numbers import Integral

_logger = logging.getLogger(__name__)

_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")


def _require_distributed():
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "aepipe.distributed needs Dask; install the extra: pip install 'aepipe[dask]'."
        ) from exc


def _check_torch_threads(torch_threads) -> None:
    if torch_threads is not None and (
        not isinstance(torch_threads, Integral) or isinstance(torch_threads, bool)
        or torch_threads < 1
    ):
        raise ValueError(
            f"torch_threads={torch_threads!r} must be a positive int or None "
            "(None leaves the workers' torch settings alone)."
        )


@contextlib.contextmanager
def connected_client(client=None, scheduler=None) -> Iterator:
    """A ``distributed.Client`` for one call, closed afterwards only if opened here.

    ``client`` wins over ``scheduler`` (an address such as
    ``"tcp://host:8786"``, or a ``Client``); with neither, the current default
    client (``distributed.get_client()``) is used.
    """
    _require_distributed()
    from distributed import Client, get_client

    if client is None and scheduler is not None:
        if isinstance(scheduler, Client):
            client = scheduler
        elif isinstance(scheduler, str):
            if scheduler in _LOCAL_SCHEDULERS:
                raise ValueError(
                    f"scheduler={scheduler!r} is a single-machine Dask scheduler; a "
                    "distributed search needs a cluster address such as 'tcp://host:8786' "
                    "or a distributed.Client."
                )
            _logger.info("Connecting to the Dask scheduler at %s", scheduler)
            with Client(scheduler, set_as_default=False) as owned:
                yield owned
            return
        else:
            raise TypeError(
                f"scheduler={scheduler!r} must be an address string such as "
                "'tcp://host:8786' or a distributed.Client."
            )
    if client is None:
        try:
            client = get_client()
        except ValueError as exc:
            raise ValueError(
                "No Dask client: pass client=distributed.Client(...) or "
                "scheduler='tcp://host:8786', or create a Client first."
            ) from exc
    yield client


@contextlib.contextmanager
def torch_threads_on(client, torch_threads: int | None) -> Iterator[None]:
    """Cap torch's threads on every worker of ``client`` for the duration of a block.

    The plugin is unregistered afterwards, which restores each worker's
    previous setting; ``None`` changes nothing.
    """
    _check_torch_threads(torch_threads)
    if torch_threads is None:
        yield
        return
    from ._plugin import TorchThreads

    name = f"aepipe-torch-threads-{uuid.uuid4().hex[:8]}"
    client.register_plugin(TorchThreads(int(torch_threads)), name=name)
    try:
        yield
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # a worker or the scheduler went away: nothing left to restore
            _logger.warning("Could not unregister worker plugin %s", name, exc_info=True)
