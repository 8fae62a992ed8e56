"""The recommended windowed detector."""

from __future__ import annotations

# Chosen on general grounds (a 32-step window, overlapping windows scored by the
# mean rule, the control-chart threshold SKAB's baselines use), not tuned per data set.
DEFAULT_SENSOR_PARAMS: dict = {
    "width": 32,
    "stride": 1,
    "point_rule": "mean",
    "latent_dim": 8,
    "threshold": "control_chart",
}


def make_default_sensor_detector(**overrides):
    """The windowed detector we recommend for multichannel sensor streams.

    Returns an unfitted :class:`WindowedAutoencoder` (an MLP on flattened,
    per-channel standardised 32-step windows) configured for any number of
    channels: ``fit(train_frame)`` learns the model and its alarm threshold
    (control chart on the training point scores) from a stretch of normal
    operation, ``score_samples(frame)`` gives one score per timestamp (higher
    = more normal) and ``predict(frame)`` ±1 per timestamp. On SKAB valve1 it
    scored higher F1 than the convolutional variant at half the cost.

    Parameters
    ----------
    **overrides
        Any constructor parameter of :class:`WindowedAutoencoder`.

    Returns
    -------
    detector : WindowedAutoencoder

    Examples
    --------
    >>> from aepipe import make_default_sensor_detector
    >>> make_default_sensor_detector(random_state=0).width
    32
    """
    from ._neural import WindowedAutoencoder

    return WindowedAutoencoder(**{**DEFAULT_SENSOR_PARAMS, **overrides})
