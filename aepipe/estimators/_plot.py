"""A picture of the code space: each record at its 2-D code, coloured by score or label."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

# More points than this are subsampled (seeded): a scatter of millions of points is a
# blot, and drawing it takes minutes.
_MAX_POINTS = 20_000
# A colour with at most this many distinct values is drawn as labels (a legend).
_MAX_LABELS = 12


def plot_codes(model, X: ArrayLike, *, color=None, color_label: str | None = None, ax=None,
               max_points: int = _MAX_POINTS, random_state=0):
    """Scatter plot of the records' latent codes, coloured by a score or a label.

    Codes of width 2 are drawn as they are; wider codes are projected onto
    their first two principal components (the axis labels and the title say
    so, with the share of the codes' variance they keep); a code of width 1
    is drawn against a seeded jitter.

    Parameters
    ----------
    model : fitted estimator with ``transform``
        An aepipe autoencoder, :class:`~aepipe.PCADetector`, an ensemble, or
        a ``Pipeline`` whose ``transform`` gives the codes.
    X : array-like or DataFrame of shape (n_samples, n_features)
    color : "score", array-like of shape (n_samples,) or None, default=None
        ``"score"``: the model's anomaly score (``-score_samples``). An array
        of numbers with more than 12 distinct values is drawn on a colour
        scale; booleans, strings, categories and other arrays as labels
        with a legend. None: one colour.
    color_label : str or None, default=None
        Name of the colour in the legend or on the colour bar.
    ax : matplotlib Axes or None, default=None
        Draw into it; otherwise a new Figure is made (Agg canvas, no display
        needed).
    max_points : int, default=20000
        More records are subsampled (seeded by ``random_state``) to this many.
    random_state : int, default=0
        Seeds the subsample and the jitter of 1-D codes.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import Autoencoder, plot_codes
    >>> X = np.random.default_rng(0).normal(size=(200, 6))
    >>> ae = Autoencoder(latent_dim=3, max_epochs=5, random_state=0).fit(X)
    >>> fig = plot_codes(ae, X, color="score")
    >>> fig.axes[0].get_xlabel()
    'PC 1 of the 3-D codes'
    """
    codes = np.asarray(model.transform(X), dtype=np.float64)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"The model's transform gave codes of shape {codes.shape}; "
                         "plot_codes needs at least one record.")
    values, color_label = _colour_values(model, X, color, color_label, len(codes))
    rng = np.random.default_rng(random_state)
    if len(codes) > max_points:
        keep = np.sort(rng.choice(len(codes), size=max_points, replace=False))
        codes = codes[keep]
        values = None if values is None else values[keep]
    points, (x_label, y_label), title = _two_dimensions(codes, rng)
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 5.2), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    size = float(np.clip(3000 / len(points), 2, 30))
    if values is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.7, linewidths=0)
    elif _is_labels(values):
        for label in _ordered_labels(values):
            mask = values == label
            ax.scatter(points[mask, 0], points[mask, 1], s=size, alpha=0.7, linewidths=0,
                       label=str(label))
        ax.legend(title=color_label, fontsize="small", markerscale=max(1.0, 20 / size))
    else:
        numbers = values.astype(np.float64)
        order = np.argsort(numbers, kind="stable")  # high values drawn last, on top
        drawn = ax.scatter(points[order, 0], points[order, 1], c=numbers[order], s=size,
                           cmap="viridis", alpha=0.8, linewidths=0)
        fig.colorbar(drawn, ax=ax, label=color_label)
    ax.set(xlabel=x_label, ylabel=y_label, title=f"{type(_final(model)).__name__}: {title}")
    return fig


def _final(model):
    return model[-1] if hasattr(model, "steps") else model


def _colour_values(model, X, color, color_label, n: int):
    if color is None:
        return None, color_label
    if isinstance(color, str):
        if color != "score":
            raise ValueError(f"color={color!r}: pass 'score', an array of one value per "
                             "record, or None.")
        return -np.asarray(model.score_samples(X), dtype=np.float64), (
            color_label or "anomaly score")
    values = color.to_numpy() if isinstance(color, (pd.Series, pd.Index)) else np.asarray(
        color)
    if values.shape != (n,):
        raise ValueError(f"color has shape {values.shape}; pass one value per record ({n}).")
    return values, color_label or getattr(color, "name", None)


def _is_labels(values: np.ndarray) -> bool:
    if values.dtype.kind in "biu":
        return len(np.unique(values)) <= _MAX_LABELS
    if values.dtype.kind == "f":
        return False
    return True


def _ordered_labels(values: np.ndarray) -> list:
    labels = pd.unique(pd.Series(values, dtype=object)).tolist()
    try:
        return sorted(labels)
    except TypeError:
        return sorted(labels, key=str)


def _two_dimensions(codes: np.ndarray, rng) -> tuple[np.ndarray, tuple[str, str], str]:
    """The 2-D points to draw, their axis labels and the plot's title."""
    width = codes.shape[1]
    if width == 2 or (width > 2 and len(codes) < 2):
        return codes[:, :2], ("code 1", "code 2"), f"{width}-D codes"
    if width == 1:
        jitter = rng.uniform(-0.5, 0.5, size=len(codes))
        return (np.column_stack([codes[:, 0], jitter]), ("code 1", "jitter (no meaning)"),
                "1-D codes")
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full").fit(codes)
    kept = float(np.sum(pca.explained_variance_ratio_)) if np.var(codes, axis=0).sum() else 1.0
    return (pca.transform(codes),
            (f"PC 1 of the {width}-D codes", f"PC 2 of the {width}-D codes"),
            f"{width}-D codes projected by PCA ({100 * kept:.0f}% of their variance)")
