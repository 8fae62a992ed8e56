"""Seeded synthetic data with injected, labelled anomalies.

Both generators draw from a local ``numpy.random.Generator``; global random
state is never touched, and the same ``random_state`` gives the same data.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["SENSOR_ANOMALY_TYPES", "make_mixed_table", "make_sensor_stream"]

#: Anomaly kinds injected by :func:`make_sensor_stream`.
SENSOR_ANOMALY_TYPES = ("spike", "drift", "level_shift", "stuck", "noise")

_SEGMENTS = np.array(["retail", "business", "premium"], dtype=object)
_CHANNELS = np.array(["web", "store", "phone", "partner"], dtype=object)


def _check_int(name, value, low):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}.")


def _check_fraction(name, value, high=0.5):
    if not isinstance(value, Real) or not 0 <= value <= high:
        raise ValueError(f"{name}={value!r} must be a number in [0, {high}].")


def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


def make_mixed_table(
    n_samples: int = 1000,
    *,
    contamination: float = 0.05,
    random_state=0,
    return_X_y: bool = False,
):
    """A mixed-type table (numeric, boolean, categorical) with injected anomalies.

    Normal records come from two latent factors: five numeric columns are
    noisy linear and non-linear functions of them, the categorical
    ``segment`` follows the first factor, ``channel`` is a free category,
    and the booleans ``is_online`` and ``has_discount`` follow the numeric
    columns. Anomalies break these dependencies without leaving each
    column's usual range much, so a detector has to learn how the columns
    relate:

    - ``"numeric"``: two numeric columns are moved off the learned relation;
    - ``"categorical"``: ``segment`` contradicts the numeric columns;
    - ``"boolean"``: both booleans are flipped against the numeric columns.

    Parameters
    ----------
    n_samples : int, default=1000
    contamination : float in [0, 0.5], default=0.05
        Share of anomalous records.
    random_state : int, Generator or None, default=0
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        ``X`` (DataFrame of shape (n_samples, 9): float, bool and category
        columns), ``y`` (Series of 0/1, 1 = anomaly), ``anomaly_type``
        (Series: ``"none"``, ``"numeric"``, ``"categorical"`` or ``"boolean"``).

    Examples
    --------
    >>> from aepipe.datasets import make_mixed_table
    >>> X, y = make_mixed_table(200, random_state=0, return_X_y=True)
    >>> X.shape, int(y.sum())
    ((200, 9), 10)
    """
    _check_int("n_samples", n_samples, 10)
    _check_fraction("contamination", contamination)
    rng = _rng(random_state)

    factor = rng.normal(size=(n_samples, 2))
    noise = 0.15 * rng.normal(size=(n_samples, 5))
    amount = np.exp(3.0 + 0.6 * factor[:, 0] + noise[:, 0] * 0.5)
    quantity = 5.0 + 2.0 * factor[:, 0] + 1.0 * factor[:, 1] + noise[:, 1] * 2
    duration = 30.0 + 8.0 * factor[:, 1] + noise[:, 2] * 8
    balance = 1000.0 + 300.0 * factor[:, 0] - 200.0 * factor[:, 1] + noise[:, 3] * 300
    risk = np.tanh(factor[:, 0] - factor[:, 1]) + noise[:, 4]
    segment_code = np.digitize(factor[:, 0] + 0.2 * rng.normal(size=n_samples), [-0.6, 0.6])
    channel_code = rng.integers(0, len(_CHANNELS), size=n_samples)
    is_online = factor[:, 1] + 0.3 * rng.normal(size=n_samples) < 0
    has_discount = factor[:, 0] + 0.3 * rng.normal(size=n_samples) > 0.5

    n_anomalies = int(round(contamination * n_samples))
    anomaly_type = np.full(n_samples, "none", dtype=object)
    anomalous = rng.choice(n_samples, size=n_anomalies, replace=False)
    kinds = rng.choice(["numeric", "categorical", "boolean"], size=n_anomalies)
    for row, kind in zip(anomalous, kinds):
        anomaly_type[row] = kind
        if kind == "numeric":
            sign = rng.choice([-1.0, 1.0])
            quantity[row] = 5.0 + sign * 2.0 * (abs(factor[row, 0]) + 2.0)
            balance[row] = 1000.0 - sign * 300.0 * (abs(factor[row, 0]) + 2.0)
        elif kind == "categorical":
            segment_code[row] = 2 if segment_code[row] == 0 else 0
            factor_sign = 1.0 if segment_code[row] == 0 else -1.0
            amount[row] = np.exp(3.0 + 0.6 * 1.5 * factor_sign)
            quantity[row] = 5.0 + 2.0 * 1.5 * factor_sign + factor[row, 1]
            balance[row] = 1000.0 + 300.0 * 1.5 * factor_sign - 200.0 * factor[row, 1]
        else:
            is_online[row] = not (factor[row, 1] < 0)
            has_discount[row] = not (factor[row, 0] > 0.5)
            duration[row] = 30.0 + 8.0 * factor[row, 1] * 1.8

    X = pd.DataFrame(
        {
            "amount": amount,
            "quantity": quantity,
            "duration": duration,
            "balance": balance,
            "risk": risk,
            "segment": pd.Categorical(_SEGMENTS[segment_code], categories=list(_SEGMENTS)),
            "channel": pd.Categorical(_CHANNELS[channel_code], categories=list(_CHANNELS)),
            "is_online": is_online.astype(bool),
            "has_discount": has_discount.astype(bool),
        }
    )
    y = pd.Series((anomaly_type != "none").astype(int), name="is_anomaly")
    if return_X_y:
        return X, y
    return Bunch(X=X, y=y, anomaly_type=pd.Series(anomaly_type, name="anomaly_type"))


def make_sensor_stream(
    n_timestamps: int = 2000,
    n_channels: int = 4,
    *,
    n_anomalies: int = 10,
    noise_level: float = 0.05,
    anomaly_types=SENSOR_ANOMALY_TYPES,
    freq: str = "1min",
    start: str = "2024-01-01",
    random_state=0,
):
    """A multichannel sensor stream with injected spikes, drifts, level shifts, stuck sensors and noise.

    The clean signal of each channel is a mix of two shared periodic factors
    (so channels are correlated, as sensors on one machine are) plus a
    channel offset. Measurement noise is added to give the observed stream,
    then ``n_anomalies`` events are injected into random channels and
    non-overlapping time segments:

    - ``"spike"``: a single reading far off (1 timestamp);
    - ``"drift"``: a growing linear offset over a segment;
    - ``"level_shift"``: a constant offset over a segment;
    - ``"stuck"``: the sensor repeats its last value over a segment;
    - ``"noise"``: a burst of much larger noise over a segment.

    Parameters
    ----------
    n_timestamps : int, default=2000
    n_channels : int, default=4
    n_anomalies : int, default=10
        Number of events (each covers 1 to about 3 % of the timestamps).
    noise_level : float, default=0.05
        Standard deviation of the measurement noise, relative to the signal's.
    anomaly_types : sequence of str, default=SENSOR_ANOMALY_TYPES
        The kinds to draw from.
    freq : str, default="1min"
        Sampling period of the DatetimeIndex.
    start : str, default="2024-01-01"
    random_state : int, Generator or None, default=0

    Returns
    -------
    data : Bunch
        ``X`` (DataFrame of shape (n_timestamps, n_channels), the noisy
        observed stream, DatetimeIndex), ``y`` (Series of 0/1 per timestamp,
        1 = inside an injected event), ``anomaly_type`` (Series: ``"none"``
        or the event's kind), ``anomaly_channel`` (Series: the affected
        channel or ``""``), ``clean`` (DataFrame: the signal without noise or
        anomalies), ``events`` (DataFrame: one row per event with ``start``,
        ``stop``, ``channel`` and ``type``).

    Examples
    --------
    >>> from aepipe.datasets import make_sensor_stream
    >>> stream = make_sensor_stream(500, 3, n_anomalies=4, random_state=0)
    >>> stream.X.shape, stream.clean.shape
    ((500, 3), (500, 3))
    """
    _check_int("n_timestamps", n_timestamps, 50)
    _check_int("n_channels", n_channels, 1)
    _check_int("n_anomalies", n_anomalies, 0)
    if not isinstance(noise_level, Real) or noise_level < 0:
        raise ValueError(f"noise_level={noise_level!r} must be a non-negative number.")
    anomaly_types = tuple(anomaly_types)
    unknown = sorted(set(anomaly_types) - set(SENSOR_ANOMALY_TYPES))
    if unknown or not anomaly_types:
        raise ValueError(
            f"anomaly_types={list(anomaly_types)!r} must be a non-empty subset of "
            f"{list(SENSOR_ANOMALY_TYPES)}."
        )
    max_len = max(2, n_timestamps // 33)
    if n_anomalies * (max_len + 1) > n_timestamps // 2:
        raise ValueError(
            f"n_anomalies={n_anomalies} is too many for n_timestamps={n_timestamps}; "
            f"use at most {n_timestamps // (2 * (max_len + 1))}."
        )
    rng = _rng(random_state)

    t = np.arange(n_timestamps, dtype=np.float64)
    factors = np.column_stack(
        [
            np.sin(2 * np.pi * t / 240.0 + rng.uniform(0, 2 * np.pi)),
            np.sin(2 * np.pi * t / 57.0 + rng.uniform(0, 2 * np.pi)),
        ]
    )
    loadings = rng.normal(size=(2, n_channels))
    offsets = rng.uniform(-2, 2, size=n_channels)
    clean = factors @ loadings + offsets
    scale = clean.std(axis=0) + 1e-12
    observed = clean + noise_level * scale * rng.normal(size=clean.shape)

    labels = np.zeros(n_timestamps, dtype=int)
    kinds = np.full(n_timestamps, "none", dtype=object)
    channels = np.full(n_timestamps, "", dtype=object)
    names = [f"sensor_{j}" for j in range(n_channels)]
    events = []
    # Non-overlapping slots: split the timeline (after a warm-up) into equal slots
    # and put at most one event in each chosen slot.
    warmup = n_timestamps // 10
    n_slots = max(n_anomalies, (n_timestamps - warmup) // (max_len + 1))
    slot_len = (n_timestamps - warmup) // n_slots
    chosen = np.sort(rng.choice(n_slots, size=n_anomalies, replace=False))
    for slot in chosen:
        kind = str(rng.choice(anomaly_types))
        channel = int(rng.integers(n_channels))
        length = 1 if kind == "spike" else int(rng.integers(max(2, max_len // 2), max_len + 1))
        length = min(length, slot_len)
        begin = warmup + slot * slot_len + int(rng.integers(0, slot_len - length + 1))
        stop = begin + length
        sigma = scale[channel]
        segment = slice(begin, stop)
        if kind == "spike":
            observed[begin, channel] += rng.choice([-1.0, 1.0]) * rng.uniform(4, 6) * sigma
        elif kind == "drift":
            observed[segment, channel] += np.linspace(0, rng.choice([-1.0, 1.0]) * 2.5 * sigma, length)
        elif kind == "level_shift":
            observed[segment, channel] += rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 2.5) * sigma
        elif kind == "stuck":
            observed[segment, channel] = observed[begin - 1, channel]
        else:
            observed[segment, channel] += 0.8 * sigma * rng.normal(size=length)
        labels[segment] = 1
        kinds[segment] = kind
        channels[segment] = names[channel]
        events.append((begin, stop, names[channel], kind))

    index = pd.date_range(start=start, periods=n_timestamps, freq=freq, name="timestamp")
    return Bunch(
        X=pd.DataFrame(observed, index=index, columns=names),
        y=pd.Series(labels, index=index, name="is_anomaly"),
        anomaly_type=pd.Series(kinds, index=index, name="anomaly_type"),
        anomaly_channel=pd.Series(channels, index=index, name="anomaly_channel"),
        clean=pd.DataFrame(clean, index=index, columns=names),
        events=pd.DataFrame(events, columns=["start", "stop", "channel", "type"]),
    )
