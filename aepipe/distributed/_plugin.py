"""A Dask worker plugin that caps torch's intra-op threads per worker.

Imported only when a cluster is in use (it subclasses
``distributed.WorkerPlugin``); workers unpickle it, so aepipe must be
installed on them.
"""

from __future__ import annotations

import threading

from distributed import WorkerPlugin

# Several in-process workers (``LocalCluster(processes=False)``) share one
# torch runtime: the first setup saves the thread count, the last teardown
# restores it.
_LOCK = threading.Lock()
_STATE = {"active": 0, "previous": None}


class TorchThreads(WorkerPlugin):
    """Set ``torch.set_num_threads(n_threads)`` on every worker, undone on removal.

    A worker runs several tasks at once (``threads_per_worker``), and each
    torch call would otherwise start one thread per core: the tasks
    oversubscribe the machine. One torch thread per task keeps a worker at
    its share of the cores.

    Parameters
    ----------
    n_threads : int, default=1
    """

    def __init__(self, n_threads: int = 1):
        self.n_threads = n_threads

    def setup(self, worker) -> None:
        import torch

        with _LOCK:
            if _STATE["active"] == 0:
                _STATE["previous"] = torch.get_num_threads()
            _STATE["active"] += 1
            torch.set_num_threads(self.n_threads)

    def teardown(self, worker) -> None:
        import torch

        with _LOCK:
            _STATE["active"] = max(_STATE["active"] - 1, 0)
            if _STATE["active"] == 0 and _STATE["previous"] is not None:
                torch.set_num_threads(_STATE["previous"])
                _STATE["previous"] = None
