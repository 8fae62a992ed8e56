"""Loaders for benchmark files already on disk (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ..exceptions import DataValidationError

__all__ = ["load_adbench", "load_odds", "load_skab"]


def _existing_file(path, kind: str, suffixes: tuple[str, ...]) -> Path:
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{kind} file not found: {str(path)!r}.")
    if not path.is_file():
        raise DataValidationError(f"{kind} path {str(path)!r} is not a file.")
    if path.suffix.lower() not in suffixes:
        raise DataValidationError(
            f"{kind} file {str(path)!r} should end in {' or '.join(suffixes)}; "
            f"got {path.suffix or 'no suffix'!r}."
        )
    return path


def _check_X_y(X, y, path: Path, kind: str):
    X = np.asarray(X)
    y = np.asarray(y).ravel()
    if X.ndim != 2:
        raise DataValidationError(
            f"{kind} file {str(path)!r}: X must be 2-D, got shape {X.shape}."
        )
    if len(y) != len(X):
        raise DataValidationError(
            f"{kind} file {str(path)!r}: X has {len(X)} rows but y has {len(y)}."
        )
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise DataValidationError(
            f"{kind} file {str(path)!r}: y must be 0/1 (1 = anomaly); got values "
            f"{sorted(values)[:10]}."
        )
    return X.astype(np.float64), y.astype(int)


def load_adbench(path):
    """Load an ADBench ``.npz`` file (arrays ``X`` and ``y``, 1 = anomaly).

    Parameters
    ----------
    path : str or Path
        For example ``"adbench/6_cardio.npz"``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int (1 = anomaly)

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataValidationError
        The file is not a readable ``.npz`` with arrays ``X`` and ``y``.
    """
    path = _existing_file(path, "ADBench", (".npz",))
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise DataValidationError(
                    f"ADBench file {str(path)!r} lacks array(s) {missing}; it has "
                    f"{sorted(archive.files)}."
                )
            X, y = archive["X"], archive["y"]
    except DataValidationError:
        raise
    except (OSError, ValueError) as exc:
        raise DataValidationError(f"ADBench file {str(path)!r} is not a readable .npz: {exc}") from exc
    return _check_X_y(X, y, path, "ADBench")


def load_odds(path):
    """Load an ODDS ``.mat`` file (MATLAB arrays ``X`` and ``y``, 1 = anomaly).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int (1 = anomaly)

    Raises
    ------
    FileNotFoundError, DataValidationError
    """
    from scipy.io import loadmat

    path = _existing_file(path, "ODDS", (".mat",))
    try:
        content = loadmat(path)
    except Exception as exc:  # scipy raises MatReadError, ValueError, TypeError ... on bad files
        raise DataValidationError(
            f"ODDS file {str(path)!r} is not a readable MATLAB file: {exc}"
        ) from exc
    missing = [key for key in ("X", "y") if key not in content]
    if missing:
        present = sorted(k for k in content if not k.startswith("__"))
        raise DataValidationError(
            f"ODDS file {str(path)!r} lacks variable(s) {missing}; it has {present}."
        )
    return _check_X_y(content["X"], content["y"], path, "ODDS")


def load_skab(path):
    """Load a SKAB ``.csv`` file (``;``-separated, ``datetime`` index).

    Parameters
    ----------
    path : str or Path
        For example ``"skab/valve1/0.csv"``.

    Returns
    -------
    data : Bunch
        ``X`` (DataFrame of the sensor columns, DatetimeIndex), ``y`` (Series
        of 0/1 from the ``anomaly`` column; all 0 for the anomaly-free file,
        which has no label columns), ``changepoint`` (Series of 0/1, or all 0
        when absent).

    Raises
    ------
    FileNotFoundError, DataValidationError
    """
    path = _existing_file(path, "SKAB", (".csv",))
    try:
        frame = pd.read_csv(path, sep=";")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataValidationError(f"SKAB file {str(path)!r} is not a readable CSV: {exc}") from exc
    if "datetime" not in frame.columns:
        raise DataValidationError(
            f"SKAB file {str(path)!r} has no 'datetime' column (columns: "
            f"{list(frame.columns)[:10]}); SKAB files are ';'-separated."
        )
    try:
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("datetime")), name="datetime")
    except (ValueError, TypeError) as exc:
        raise DataValidationError(f"SKAB file {str(path)!r}: bad 'datetime' values: {exc}") from exc
    labels = {}
    for column in ("anomaly", "changepoint"):
        if column in frame.columns:
            labels[column] = frame.pop(column).fillna(0).astype(int)
        else:
            labels[column] = pd.Series(0, index=frame.index, name=column)
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DataValidationError(
            f"SKAB file {str(path)!r}: sensor column(s) {non_numeric} are not numeric."
        )
    return Bunch(X=frame, y=labels["anomaly"], changepoint=labels["changepoint"])
