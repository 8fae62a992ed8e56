"""Hyper-parameter searches on a Dask cluster through joblib's Dask backend."""

from __future__ import annotations

import logging

from numpy.typing import ArrayLike

from ._cluster import _check_torch_threads, connected_client, torch_threads_on

_logger = logging.getLogger(__name__)


def search_on_dask(
    search,
    X: ArrayLike,
    y: ArrayLike | None = None,
    *,
    client=None,
    scheduler=None,
    torch_threads: int | None = 1,
    track: bool = False,
    **tracking_kwargs,
):
    """Fit a scikit-learn search (e.g. ``GridSearchCV``) with its fits spread over a Dask cluster.

    The search runs unchanged in this process; its candidate x fold fits are
    joblib tasks sent to the cluster's workers through joblib's Dask backend
    (``joblib.parallel_config(backend="dask")``). Every estimator is fitted
    from its own ``random_state`` on the same folds, so ``cv_results_`` and
    ``best_params_`` are those of the same search run locally.

    Parameters
    ----------
    search : GridSearchCV, RandomizedSearchCV or any estimator fitting through joblib
        Unfitted; fitted in place. Its ``n_jobs`` is ignored: the cluster's
        worker threads set the parallelism.
    X : array-like or DataFrame of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), default=None
        Labels for labelled scorers (1 = anomaly); None for label-free ones.
    client : distributed.Client, default=None
        The cluster to use. Default: ``scheduler`` if given, else the current
        default client.
    scheduler : str or distributed.Client, default=None
        A scheduler address such as ``"tcp://scheduler:8786"``; a client is
        opened for this call and closed afterwards.
    torch_threads : int or None, default=1
        Torch intra-op threads per worker process while the search runs
        (restored afterwards). ``1`` avoids oversubscription when a worker runs
        one task per core; ``None`` leaves the workers alone. This process's
        own torch settings are never changed.
    track : bool, default=False
        Record the search in MLflow (a parent run and one child run per
        candidate) with :func:`aepipe.tracking.track_search`; runs are logged
        from this process, so only it needs the tracking store.
    **tracking_kwargs
        Passed to :func:`aepipe.tracking.track_search` when ``track=True``
        (``experiment_name``, ``tracking_uri``, ...).

    Returns
    -------
    result : object
        The fitted ``search``, or what ``track_search`` returns when ``track=True``.

    See Also
    --------
    score_dask : score a Dask DataFrame with the fitted model.

    Examples
    --------
    >>> from distributed import Client                       # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")               # doctest: +SKIP
    >>> search_on_dask(search, X, y, client=client)           # doctest: +SKIP
    >>> search.best_params_                                   # doctest: +SKIP
    """
    if tracking_kwargs and not track:
        raise TypeError(
            f"Got tracking arguments {sorted(tracking_kwargs)} with track=False; "
            "pass track=True to record the search in MLflow."
        )
    _check_torch_threads(torch_threads)
    import joblib

    track_search = None
    if track:
        from ..tracking import track_search  # MLflow only when asked for

    with connected_client(client, scheduler) as dask_client:
        _logger.info(
            "Fitting %s on Dask (%d worker threads)",
            type(search).__name__, sum(dask_client.nthreads().values()),
        )
        with torch_threads_on(dask_client, torch_threads), joblib.parallel_config(
            backend="dask", client=dask_client
        ):
            if track_search is not None:
                return track_search(search, X, y, **tracking_kwargs)
            return search.fit(X, y)
