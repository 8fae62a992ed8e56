"""The recommended windowed detector."""

from __future__ import annotations

DEFAULT_SENSOR_PARAMS: dict = {}


def make_default_sensor_detector(**overrides):
    """The windowed detector we recommend for multichannel sensor streams.

    Returns an unfitted detector configured for any number of channels:
    ``fit(train_frame)`` learns the model and its alarm threshold from a
    stretch of normal operation, ``score_samples(frame)`` gives one score per
    timestamp (higher = more normal) and ``predict(frame)`` ±1 per timestamp.

    Parameters
    ----------
    **overrides
        Any constructor parameter of the returned estimator.

    Returns
    -------
    detector : WindowedConvAutoencoder
    """
    from ._neural import WindowedConvAutoencoder

    return WindowedConvAutoencoder(**{**DEFAULT_SENSOR_PARAMS, **overrides})
