"""Seeding without touching global random state.

Torch draws weight initialisations, dropout masks and corruption noise from
its global generator (its modules take no generator of their own). We run
every such section inside :func:`torch.random.fork_rng`, seeded from the
estimator's ``random_state``, so results are reproducible and the caller's
global RNG state is restored afterwards.

The global generator is shared by all threads, so seeded sections hold one
process-wide lock: fits and scorings in concurrent threads then draw exactly
what they draw when run one after another (the same models and scores),
and each thread finds torch's state as it left it. The sections run one at
a time; code outside aepipe that draws from torch's global generator in
another thread while a fit runs can still interleave with it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from numbers import Integral

import numpy as np

_MAX_SEED = 2**31 - 1
# Re-entrant: a seeded section may run another (an ensemble member inside a fit).
_TORCH_RNG_LOCK = threading.RLock()


def resolve_seed(random_state) -> int:
    """Return an integer seed for ``random_state`` (None, int or RandomState).

    ``None`` draws fresh OS entropy instead of consuming NumPy's global
    generator, so fitting never changes the caller's random stream.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] % _MAX_SEED)
    if isinstance(random_state, Integral):
        return int(random_state) % _MAX_SEED
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(_MAX_SEED))
    raise ValueError(
        f"random_state={random_state!r} must be None, an int or a "
        "numpy.random.RandomState instance."
    )


@contextlib.contextmanager
def torch_seeded(seed: int, device) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring it (and os.environ) on exit."""
    import torch

    devices = []
    if str(device).startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        devices = [index if index is not None else torch.cuda.current_device()]
    with _TORCH_RNG_LOCK:
        environ_keys = set(os.environ)
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                yield
        finally:
            # Building the first optimizer imports torch._dynamo, which sets
            # TORCHINDUCTOR_CACHE_DIR in os.environ: leave the environment as we found it.
            for key in set(os.environ) - environ_keys:
                if key.startswith("TORCH"):
                    os.environ.pop(key, None)
