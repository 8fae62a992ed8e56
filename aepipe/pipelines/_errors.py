"""The error raised for a bad pipeline config."""

from ..exceptions import DataValidationError


class ConfigError(DataValidationError):
    """A pipeline config with an unknown key, estimator or parameter, or a bad value.

    A :class:`ValueError` (through :class:`~aepipe.exceptions.DataValidationError`);
    the message names the offending key and the allowed ones.
    """
