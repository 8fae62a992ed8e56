"""Drawing records from a decoder's p(x|h), column by column, in the encoded space.

The decoders' means live in the encoded space of :mod:`aepipe._tabular`:
standardised values for Gaussian columns, probabilities for Bernoulli
columns and for each categorical one-hot group. A draw keeps that layout (a
0/1 entry for a Bernoulli column, a one-hot row for a categorical one), so
``layout.decode`` turns it into the user's columns and dtypes unchanged: the
argmax of a one-hot row is the drawn category, a 0/1 entry read as ``>= 0.5``
the drawn boolean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._tabular import BERNOULLI, CATEGORICAL, GAUSSIAN, TabularLayout


def _network_blocks(layout: TabularLayout):
    """``(column, first, stop)``: each column's block of the network's (one-hot) layout.

    A categorical column stored by index in the encoded matrix is a one-hot
    group of all its categories in the network's layout, which the decoder's
    mean follows.
    """
    position = 0
    for column in layout.columns:
        width = getattr(column, "n_values", column.stop - column.start)
        yield column, position, position + width
        position += width


def sample_encoded(layout: TabularLayout, mean: np.ndarray, gaussian_std: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """One draw from p(x|h) per row of ``mean``, in the encoded space.

    Parameters
    ----------
    layout : TabularLayout
    mean : ndarray of shape (n_samples, n_network_inputs)
        The decoder's mean in the network's layout: standardised values
        (Gaussian), probabilities (Bernoulli, categorical one-hot groups).
    gaussian_std : ndarray of shape (n_gaussian_columns,)
        Noise standard deviation of each Gaussian column, standardised units.
    rng : numpy.random.Generator

    Returns
    -------
    draw : ndarray of shape (n_samples, n_encoded), float64
        In the encoded layout ``layout.decode`` reads: a drawn category is a
        one-hot row, or its index for a column stored by index.
    """
    mean = np.asarray(mean, dtype=np.float64)
    draw = np.zeros((len(mean), layout.n_encoded))
    gaussian = 0
    for column, first, stop in _network_blocks(layout):
        if column.kind == GAUSSIAN:
            draw[:, column.start] = (mean[:, first]
                                     + gaussian_std[gaussian] * rng.standard_normal(len(mean)))
            gaussian += 1
        elif column.kind == BERNOULLI:
            draw[:, column.start] = rng.random(len(mean)) < mean[:, first]
        else:
            picked = _category_draw(mean[:, first:stop], rng)
            if getattr(column, "indexed", False):
                draw[:, column.start] = picked
            else:
                draw[np.arange(len(mean)), column.start + picked] = 1.0
    return draw


def _category_draw(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category index per row drawn from its probabilities (inverse CDF)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]  # float32 softmax rows sum to 1 only up to rounding
    picked = (rng.random((len(probabilities), 1)) >= cumulative).sum(axis=1)
    return np.minimum(picked, probabilities.shape[1] - 1)


def column_probabilities(layout: TabularLayout, mean: np.ndarray, like=None) -> dict:
    """Per discrete column, a DataFrame of p(value | h): categories or False/True.

    ``mean`` is the decoder's mean in the network's layout (see
    :func:`sample_encoded`).
    """
    index = like.index if isinstance(like, pd.DataFrame) else None
    out = {}
    for column, first, stop in _network_blocks(layout):
        block = np.asarray(mean[:, first:stop], dtype=np.float64)
        if column.kind == BERNOULLI:
            out[column.name] = pd.DataFrame({False: 1.0 - block[:, 0], True: block[:, 0]},
                                            index=index)
        elif column.kind == CATEGORICAL:
            block = block / block.sum(axis=1, keepdims=True)
            out[column.name] = pd.DataFrame(block, columns=list(column.categories), index=index)
    return out


def as_original_frame(layout: TabularLayout, values, names) -> pd.DataFrame | np.ndarray:
    """A decoded numeric matrix as a DataFrame with the fitted names and dtypes.

    Mixed layouts decode to a DataFrame already; numeric ones decode to an
    array, which becomes a frame with ``names`` (the fitted column names)
    when there are names, each column cast back to its fitted dtype.
    """
    from .._tabular import _as_dtype

    if isinstance(values, pd.DataFrame) or names is None:
        return values
    return pd.DataFrame({name: _as_dtype(values[:, j], column.dtype) for j, (name, column)
                         in enumerate(zip(names, layout.columns))})
