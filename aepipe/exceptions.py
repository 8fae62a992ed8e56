"""Exceptions raised by aepipe.

Every error a user can trigger by what they pass in is a :class:`ValueError`
subclass (so ``except ValueError`` keeps working, as with scikit-learn), and
its message says what was wrong and how to fix it.
"""

from sklearn.exceptions import NotFittedError

__all__ = [
    "DataValidationError",
    "ModelFileError",
    "NotFittedError",
    "TrackingError",
    "TrainingDivergedError",
]


class DataValidationError(ValueError):
    """Input data that cannot be used as given (bad values, columns or types)."""


class ModelFileError(ValueError):
    """A model file that is missing, truncated, tampered with or of another version."""


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the last good weights were kept."""


class TrackingError(RuntimeError):
    """MLflow tracking store or model URI that cannot be reached or read."""
