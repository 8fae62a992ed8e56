"""Where runs go, and turning MLflow's failures into one readable line."""

from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from urllib.parse import urlparse

from ..exceptions import TrackingError

logger = logging.getLogger(__name__)

# Seconds to wait for a remote tracking server's TCP handshake before giving up.
# MLflow's own HTTP client retries with exponential backoff for minutes.
_CONNECT_TIMEOUT = 5.0


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI that runs will use.

    Precedence: ``uri`` if given, then ``MLFLOW_TRACKING_URI``, then a URI set
    with ``mlflow.set_tracking_uri``, then MLflow's local default (a SQLite
    database ``mlflow.db`` in the working directory, as an absolute URI so a
    served model or a subprocess finds the same store).

    Parameters
    ----------
    uri : str or None, default=None

    Returns
    -------
    uri : str
    """
    if uri:
        return str(uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    import mlflow

    return mlflow.get_tracking_uri()


def check_reachable(uri: str) -> None:
    """Fail fast, in one line, when a remote tracking server does not answer."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise TrackingError(
            f"Cannot reach the MLflow tracking server at {uri} ({exc.strerror or exc}). "
            "Start it (`mlflow server`), or pass another tracking_uri / MLFLOW_TRACKING_URI."
        ) from None


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).strip().splitlines()[0][:500]


@contextmanager
def mlflow_errors(what: str, uri: str):
    """Re-raise MLflow / store failures as a one-line :class:`TrackingError`."""
    import sqlite3

    from mlflow.exceptions import MlflowException

    try:
        import sqlalchemy.exc

        store_errors: tuple = (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error)
    except ImportError:  # pragma: no cover - sqlalchemy ships with mlflow
        store_errors = (sqlite3.Error,)
    try:
        yield
    except TrackingError:
        raise
    except (MlflowException, OSError, *store_errors) as exc:
        raise TrackingError(f"{what} failed for tracking URI {uri}: {_first_line(exc)}") from None


@contextmanager
def using_tracking_uri(uri: str):
    """Point MLflow's fluent API at ``uri`` for the duration, then restore it."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    previous = utils._tracking_uri
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
