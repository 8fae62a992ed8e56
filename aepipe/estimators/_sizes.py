"""The one size rule for network widths: ``"auto"`` or checked integers.

An ``"auto"`` width is ``clip(floor(per_input * n_inputs), low, high)``
units for ``n_inputs`` network inputs; each detector names its
``(per_input, low, high)`` below. A given width must be an integer >= 1
(:func:`~aepipe.estimators._base.check_size`).
"""

from __future__ import annotations

import math

from ._base import check_size, check_sizes

# (units per input, fewest, most) of each "auto" width.
HIDDEN = (2, 16, 256)  # Autoencoder's hidden layer: room to mix the inputs
LATENT = (0.5, 1, 32)  # the code: Autoencoder's, and the widest ensemble member's
ENSEMBLE_HIDDEN = (1, 16, 64)  # each of AutoencoderEnsemble's small members
# A window holds width x n_channels inputs, neighbouring steps strongly correlated.
WINDOW_HIDDEN = (0.25, 16, 256)


def auto_width(n_inputs: int, rule: tuple) -> int:
    """``clip(floor(per_input * n_inputs), low, high)`` for ``rule = (per_input, low, high)``.

    Examples
    --------
    >>> auto_width(6, HIDDEN), auto_width(6, LATENT), auto_width(500, LATENT)
    (16, 3, 32)
    """
    per_input, low, high = rule
    return int(min(max(math.floor(per_input * n_inputs), low), high))


def resolve_width(name: str, value, n_inputs: int, rule: tuple) -> int:
    """One width: ``"auto"`` by ``rule``, else ``value`` checked as a size."""
    return auto_width(n_inputs, rule) if value == "auto" else check_size(name, value)


def resolve_widths(name: str, values, n_inputs: int, rule: tuple) -> tuple[int, ...]:
    """Layer widths: ``"auto"`` is one layer by ``rule``, else ``values`` checked as sizes."""
    if isinstance(values, str) and values == "auto":
        return (auto_width(n_inputs, rule),)
    return check_sizes(name, values)
