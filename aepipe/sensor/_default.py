"""The recommended windowed detector."""

from __future__ import annotations

# Chosen on general grounds, not tuned per data set: a 32-step window, overlapping
# windows scored by the mean rule, slow (drifting) channels centred per window, and
# SKAB's control-chart limit; at most 30 epochs (see the docstring).
DEFAULT_SENSOR_PARAMS: dict = {
    "width": 32,
    "stride": 1,
    "point_rule": "mean",
    "latent_dim": 8,
    "slow_channels": "auto",
    "max_epochs": 30,
    "threshold": "control_chart",
    "handle_missing": "mask",
}


def make_default_sensor_detector(**overrides):
    """The windowed detector we recommend for multichannel sensor streams.

    Returns an unfitted :class:`WindowedAutoencoder` (an MLP on flattened,
    per-channel standardised 32-step windows) configured for any number of
    channels: ``fit(train_frame)`` learns the model and its alarm threshold
    (control chart on the training point scores) from a stretch of normal
    operation, ``score_samples(frame)`` gives one score per timestamp (higher
    = more normal) and ``predict(frame)`` ±1 per timestamp.

    Design, and why:

    - ``slow_channels="auto"``: channels that drift slowly in the training
      stretch (most of their variance between 32-step windows, e.g.
      temperatures) are centred per window. Their level keeps drifting in
      normal operation beyond the range a short training stretch shows, and
      scoring it raised alarms on every later normal row (on SKAB valve1 the
      two thermal channels caused most false alarms); their shape and slope
      within a window are still modelled.
    - ``threshold="control_chart"``: ``1.5 * q99`` of the training scores,
      the rule of SKAB's baselines. A short stretch of normal operation
      understates how far normal operation later wanders, so the limit keeps
      a wide margin: on SKAB's anomaly-free recording (8 stretches, fitted on
      400 rows, 750 normal rows flagged) it raised alarms on 32 % of the
      normal rows, against 57 % for a limit centred on the training median
      (``"centred_control_chart"``, more sensitive to small sustained shifts:
      it misses fewer faulty rows and flags more normal ones).
    - The threshold is fitted on training rows covered by a full 32 windows,
      as every row of a long stream later is; edge rows average fewer windows
      and their noisier extremes would inflate it.
    - An MLP on flattened windows: on SKAB valve1 it scored higher F1 than the
      convolutional variant at half the cost.
    - Command flags and other two-valued channels are scaled by their step,
      not their standard deviation (``standardize``): a rarely set flag's
      standard deviation is tiny, so each normal toggle drowned the other
      channels. Decided on half A of ``pipelines/benchmark_sensor.py``
      (SKAB valve1 and NASA SMAP, ``--half A``), confirmed on half B: SMAP
      average precision A 0.276 -> 0.483, B 0.357 -> 0.470 (the windowed
      PyOD AutoEncoder: 0.351-0.424; aepipe's ``WindowedPCA(width=32)``,
      which shares the scaling: 0.481-0.493); SKAB, with no two-valued
      channel, is unchanged (F1 0.720 / 0.908 at 2-3 % false alarms, where
      the peers raise 9-27 %).
    - ``max_epochs=30`` (with early stopping, as before), decided on half A
      and confirmed on half B against the previous 100: no metric moved
      beyond seed noise (SMAP average precision A 0.268 -> 0.276, B 0.356 ->
      0.357; SKAB F1 A 0.712 -> 0.720, B 0.906 -> 0.908 at the same false-
      alarm rate), and the fit took about a third of the time.
    - ``handle_missing="mask"``: a missing reading (NaN) is left out of the
      scores instead of stopping the stream with an error; on complete data
      the scores are bit-identical to ``handle_missing="error"``.
    - Channels are combined by summing their NLL shares (``combine="sum"``).
      ``combine="max"`` (the most surprising channel, each calibrated
      against its own training distribution) ranked SMAP as well or better
      (average precision A 0.490, B 0.506) but, with the same limit rule,
      raised SKAB's false-alarm rate from 2-3 % to 31 % on both halves and
      its normal-operation alarms from 27-34 % to 70-84 %: not the default;
      try it where one channel among many noisy ones carries the fault.
    - Every channel is scored (``context_channels=None``). Reading command
      flags as context (``context_channels="two_valued"``: in every window,
      not scored) raised SMAP's average precision from 0.483 to 0.587
      (half A) and from 0.470 to 0.611 (half B), and the share of anomaly
      sequences alarmed from 0.64 to 0.79 and from 0.77 to 0.91; SKAB has
      no two-valued channel and is unchanged. But the flags' routine toggles
      had set the alarm limit: without them it sits on the telemetry alone,
      whose test stretch wanders beyond its training one on several
      channels, and the false-alarm runs rose from 2.2 to 7.2 and from 9.1
      to 16.7 per 10,000 normal rows (event F1 0.581 -> 0.481, 0.393 ->
      0.280). Which channels are commands is the user's knowledge: pass
      them where ranking matters more than the alarm count. Dropping the
      flags instead of reading them ranked worse (0.582 and 0.549).

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


def make_default_sensor_denoiser(n_channels=None, **overrides):
    """The windowed denoising autoencoder we recommend for cleaning a noisy stream.

    Returns an unfitted
    :class:`~aepipe.sensor._neural.WindowedDenoisingAutoencoder`: fit it on a
    noisy stream (no clean signal needed) and call ``reconstruct(frame)`` for
    the denoised signal in the frame's units. With ``n_channels`` the window
    holds about 64 values (``max(8, 64 // n_channels)`` steps, at most 32),
    the width its docstring advises; otherwise 8 steps.

    It first does no harm where it can tell: each channel's white-noise level
    is estimated on its own (``noise_std_``), robustly enough that level
    steps, spikes, flags, counters and quantised readings are not taken for
    noise; a channel with negligible noise is returned unchanged (with a
    warning), and each channel's correction is shrunk towards the input by
    the blend that minimises Stein's unbiased risk estimate (``blend_``).
    What it cannot tell: white noise is noise to it whatever its source, so
    a recording's own sensor noise is removed too. On SKAB recordings with
    noise added (``pipelines/benchmark_denoise.py``), whose own white noise
    is 3.6 times the smallest added noise, that makes it worse than the
    untouched input at noise 0.1 (MSE 0.0216 against 0.0100 on half A); told
    the true noise level (``noise_level=``) it is better (0.0066).

    Parameters
    ----------
    n_channels : int or None, default=None
    **overrides
        Any constructor parameter of ``WindowedDenoisingAutoencoder``.

    Returns
    -------
    denoiser : WindowedDenoisingAutoencoder

    Examples
    --------
    >>> from aepipe import make_default_sensor_denoiser
    >>> make_default_sensor_denoiser(n_channels=4).width
    16
    """
    from ._neural import WindowedDenoisingAutoencoder

    params = {} if n_channels is None else {"width": int(min(32, max(8, 64 // n_channels)))}
    return WindowedDenoisingAutoencoder(**{**params, **overrides})
