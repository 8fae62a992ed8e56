"""aepipe.save / aepipe.load: a model file loaded without unpickling; damage is a clear error."""

import hashlib
import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy

import aepipe
from aepipe import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from aepipe._persistence import ARRAYS
from aepipe.exceptions import ModelFileError

FAST = dict(max_epochs=2, batch_size=32, random_state=0)


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(50, 3))


@pytest.fixture
def saved(X, tmp_path):
    return aepipe.save(Autoencoder(**FAST).fit(X), tmp_path / "model.zip")


def _rewrite(path, change, resign=True):
    """Rewrite the zip at ``path`` with ``change(members: dict) -> dict``.

    ``resign``: put the new config's checksum in the zip comment, as a
    crafted file would, so the checks behind the checksum are what is tested.
    """
    import hashlib

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members = change(members)
    with zipfile.ZipFile(path, "w") as archive:
        if resign and "config.json" in members:
            archive.comment = (b"aepipe-config-sha256:"
                               + hashlib.sha256(members["config.json"]).hexdigest().encode())
        for name, data in members.items():
            archive.writestr(name, data)


def _state(config):
    """The saved object's state in a format-3 config (its parameters, attributes, nets)."""
    return config["model"]["__saved__"][1]


def _edit_config(path, edit, resign=True):
    def change(members):
        config = json.loads(members["config.json"])
        edit(config)
        members["config.json"] = json.dumps(config).encode()
        return members
    _rewrite(path, change, resign)


@pytest.mark.parametrize("estimator", [
    Autoencoder(**FAST),
    DenoisingAutoencoder(corruption="masking", **FAST),
    SparseAutoencoder(sparsity="l1", **FAST),
    ContractiveAutoencoder(**FAST),
    VariationalAutoencoder(n_score_samples=3, **FAST),
    Autoencoder(hidden_sizes=(8, 4), latent_dim=2, handle_missing="mask", **FAST),
], ids=lambda e: type(e).__name__)
def test_round_trip_gives_identical_scores_and_params(estimator, X, tmp_path):
    estimator.fit(X)
    loaded = aepipe.load(aepipe.save(estimator, tmp_path / "m.zip"))
    assert type(loaded) is type(estimator)
    assert loaded.get_params() == estimator.get_params()
    np.testing.assert_array_equal(loaded.score_samples(X), estimator.score_samples(X))
    np.testing.assert_array_equal(loaded.transform(X), estimator.transform(X))
    assert loaded.offset_ == estimator.offset_
    assert len(loaded.net_.history) == len(estimator.net_.history)


def test_round_trip_of_a_mixed_frame_keeps_columns_and_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=40), "flag": rng.random(40) < 0.5,
                          "shop": pd.Categorical(rng.choice(["a", "b"], size=40)),
                          "code": rng.choice([1, 2, 3], size=40)})
    est = Autoencoder(feature_types={"code": "categorical"}, **FAST).fit(frame)
    loaded = aepipe.load(aepipe.save(est, tmp_path / "m.zip"))
    np.testing.assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))
    pd.testing.assert_frame_equal(loaded.reconstruct(frame), est.reconstruct(frame))
    assert list(loaded.feature_names_in_) == list(frame.columns)


def test_round_trip_of_the_default_detector_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.lognormal(size=120), "const": 1.0,
                          "flag": rng.random(120) < 0.5,
                          "shop": pd.Categorical(rng.choice(["a", "b", "c"], size=120))})
    est = aepipe.make_default_detector(n_estimators=3, training_steps=20, random_state=0)
    est.fit(frame)
    loaded = aepipe.load(aepipe.save(est, tmp_path / "default.zip"))
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))
    np.testing.assert_array_equal(loaded.latent_score(frame), est.latent_score(frame))
    np.testing.assert_array_equal(loaded.predict(frame), est.predict(frame))
    pd.testing.assert_frame_equal(loaded.feature_scores(frame), est.feature_scores(frame))
    pd.testing.assert_frame_equal(loaded.reconstruct(frame), est.reconstruct(frame))
    assert loaded.latent_dims_ == est.latent_dims_


def test_file_holds_only_json_and_safetensors(saved):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["arrays.safetensors", "config.json"]
        config = json.loads(archive.read("config.json"))
        arrays = safetensors.numpy.load(archive.read("arrays.safetensors"))
    assert config["class"] == "Autoencoder" and config["format_version"] == 3
    assert {"aepipe", "torch", "scikit-learn", "safetensors"} <= set(config["versions"])
    assert any(name.startswith("model.net0.") for name in arrays)  # the net's weights


def test_save_is_atomic_and_leaves_no_temporary_files(X, tmp_path):
    est = Autoencoder(**FAST).fit(X)
    aepipe.save(est, tmp_path / "m.zip")
    aepipe.save(est, tmp_path / "m.zip")  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["m.zip"]


def test_save_refuses_unsupported_and_unfitted(X, tmp_path):
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="saved-state protocol.*got IsolationForest.*joblib"):
        aepipe.save(IsolationForest(n_estimators=2).fit(X), tmp_path / "m.zip")
    with pytest.raises(aepipe.exceptions.NotFittedError):
        aepipe.save(Autoencoder(), tmp_path / "m.zip")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable"),
    (lambda p: p.write_bytes(b""), "not a readable"),
    (lambda p: p.write_text("hello"), "not a readable"),
    (lambda p: _rewrite(p, lambda m: {**m, "config.json": b"{not json"}), "invalid config.json"),
    (lambda p: _rewrite(p, lambda m: {k: v for k, v in m.items() if k != ARRAYS}),
     "has no 'arrays.safetensors'"),
    (lambda p: _rewrite(p, lambda m: {k: v for k, v in m.items() if k != "config.json"}),
     "has no 'config.json'"),
    (lambda p: _rewrite(p, lambda m: {**m, ARRAYS: m[ARRAYS][:-10]}),
     "bytes in the zip but"),
    (lambda p: _rewrite(p, lambda m: {**m, ARRAYS: m[ARRAYS][:-1] + b"x"}),
     "does not match the size/SHA-256"),
    (lambda p: _edit_config(p, lambda c: c.update({"class": "os.system"})),
     "names the class 'os.system'"),
    (lambda p: _edit_config(p, lambda c: c.update({"format_version": 99})), "format version 99"),
    (lambda p: _edit_config(p, lambda c: c.update({"format": "other"})), "not an aepipe model"),
    (lambda p: _edit_config(p, lambda c: _state(c)["params"].update({"evil": 1})),
     r"unknown parameters \['evil'\]"),
    (lambda p: _edit_config(p, lambda c: _state(c)["params"].update({"learning_rate": "fast"})),
     "cannot be rebuilt"),
    (lambda p: _edit_config(p, lambda c: _state(c)["attributes"].pop("layout_")),
     "cannot be rebuilt"),
    (lambda p: _edit_config(p, lambda c: _state(c)["attributes"].update({"latent_dim_": 7})),
     "cannot be rebuilt"),
    (lambda p: _edit_config(p, lambda c: c["model"]["__saved__"].__setitem__(0, "Popen")),
     "cannot be rebuilt.*names the class 'Popen'"),
], ids=["truncated", "empty", "text", "bad-json", "no-weights", "no-config", "short-weights",
        "flipped-byte", "unknown-class", "future-version", "foreign-format", "unknown-param",
        "bad-param-value", "no-layout", "wrong-shape", "unknown-nested-class"])
def test_damaged_or_tampered_file_is_a_model_file_error(saved, damage, message):
    damage(saved)
    with pytest.raises(ModelFileError, match=message):
        aepipe.load(saved)


@pytest.mark.parametrize("edit", [
    lambda c: c.update({"class": "SparseAutoencoder"}),  # another model, other scores
    lambda c: _state(c)["attributes"].update({"offset_": 1e9}),  # every row an alarm
    lambda c: _state(c)["params"].update({"contamination": 0.4}),
], ids=["class", "offset", "param"])
def test_an_edited_config_is_refused_by_its_checksum(saved, edit):
    _edit_config(saved, edit, resign=False)
    with pytest.raises(ModelFileError, match="does not match the checksum"):
        aepipe.load(saved)


def test_a_member_larger_than_declared_or_plausible_is_refused_before_decompressing(saved):
    import hashlib

    big = bytes(64 * 2**20)  # 64 MiB of zeros: deflates about a thousandfold

    def bomb(members):
        config = json.loads(members["config.json"])
        config["members"][ARRAYS] = {"size": len(big), "sha256": hashlib.sha256(big).hexdigest()}
        return {**members, "config.json": json.dumps(config).encode(), ARRAYS: big}

    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members = bomb(members)
    with zipfile.ZipFile(saved, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.comment = (b"aepipe-config-sha256:"
                           + hashlib.sha256(members["config.json"]).hexdigest().encode())
        for name, data in members.items():
            archive.writestr(name, data)
    assert saved.stat().st_size < 2**20
    with pytest.raises(ModelFileError, match="refused before decompressing"):
        aepipe.load(saved)


def test_a_bad_device_argument_is_the_callers_error_not_the_files(saved):
    with pytest.raises(ValueError, match="device='tpu'") as info:
        aepipe.load(saved, device="tpu")
    assert not isinstance(info.value, ModelFileError)


def _fuzz_positions(size: int, step: int):
    return range(0, size, step)


@pytest.mark.parametrize("kind, step", [
    pytest.param("autoencoder", 1, id="autoencoder-every-byte"),
    pytest.param("windowed", 7, id="windowed-every-7th-byte"),
    pytest.param("windowed", 1, id="windowed-every-byte", marks=pytest.mark.slow),
])
def test_every_flipped_byte_or_truncation_is_a_model_file_error_or_harmless(saved, X, step,
                                                                           kind):
    """A damaged file never loads as another model, and never fails with another error."""
    if kind == "windowed":
        from aepipe.sensor import WindowedPCA

        aepipe.save(WindowedPCA(width=4).fit(X), saved)
    original = saved.read_bytes()
    expected = aepipe.load(saved).score_samples(X)
    outcomes = {"refused": 0, "harmless": 0}

    def attempt(data: bytes):
        saved.write_bytes(data)
        try:
            model = aepipe.load(saved)
        except ModelFileError:
            outcomes["refused"] += 1
            return
        # Bytes zip ignores (timestamps, attributes) may change: the model must not.
        np.testing.assert_array_equal(model.score_samples(X), expected)
        outcomes["harmless"] += 1

    for position in _fuzz_positions(len(original), step):
        flipped = bytearray(original)
        flipped[position] ^= 0xFF
        attempt(bytes(flipped))
    for length in _fuzz_positions(len(original), step):
        attempt(original[:length])
    assert outcomes["refused"] > outcomes["harmless"]


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('pwned').touch()",))


def test_a_pickle_payload_in_the_arrays_is_never_executed(saved, tmp_path, monkeypatch):
    payload = pickle.dumps({"w": _Exploit()})
    monkeypatch.chdir(tmp_path)

    def change(members):
        config = json.loads(members["config.json"])
        config["members"][ARRAYS] = {"sha256": hashlib.sha256(payload).hexdigest(),
                                     "size": len(payload)}
        return {**members, "config.json": json.dumps(config).encode(), ARRAYS: payload}

    _rewrite(saved, change)
    with pytest.raises(ModelFileError, match="arrays cannot be read"):
        aepipe.load(saved)
    assert not (tmp_path / "pwned").exists()


def test_missing_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        aepipe.load(tmp_path / "nope.zip")


# ---------------------------------------------------------------- windowed (sensor) detectors
def _sensor_stream(n=300):
    rng = np.random.default_rng(1)
    t = np.arange(n)[:, None]
    values = np.sin(t / np.array([5.0, 7.0, 11.0])) + 0.1 * rng.normal(size=(n, 3))
    values[250:260, 1] += 2.0
    index = pd.date_range("2024-01-01", periods=n, freq="s")
    # A gap splits the stream: the loaded model must keep the same segments.
    index = index.where(t.ravel() < 150, index + pd.Timedelta("1h"))
    return pd.DataFrame(values, columns=["flow", "pressure", "temp"], index=index)


def _sensor_detectors():
    from aepipe.sensor import WindowedConvAutoencoder, WindowedDenoisingAutoencoder, WindowedPCA
    from aepipe.thresholds import SPOTThreshold

    fast = dict(width=8, max_epochs=2, random_state=0)
    return [
        aepipe.make_default_sensor_detector(n_models=2, **fast),
        WindowedConvAutoencoder(hidden_channels=(8, 4), threshold="pot", **fast),
        WindowedDenoisingAutoencoder(**fast),
        WindowedPCA(width=8, statistic="t2+q"),
        WindowedPCA(width=8, statistic="q", threshold=SPOTThreshold(q=1e-3)),
    ]


@pytest.mark.parametrize("estimator", _sensor_detectors(), ids=lambda e: type(e).__name__)
def test_round_trip_of_a_windowed_detector_is_exact(estimator, tmp_path):
    stream = _sensor_stream()
    estimator.fit(stream.iloc[:120])
    path = aepipe.save(estimator, tmp_path / "sensor.zip")
    loaded = aepipe.load(path)
    assert type(loaded) is type(estimator)
    assert repr(loaded.get_params()) == repr(estimator.get_params())
    np.testing.assert_array_equal(loaded.score_samples(stream), estimator.score_samples(stream))
    np.testing.assert_array_equal(loaded.predict(stream), estimator.predict(stream))
    pd.testing.assert_frame_equal(loaded.feature_scores(stream), estimator.feature_scores(stream))
    assert loaded.threshold_ == estimator.threshold_
    if hasattr(estimator, "nets_"):
        pd.testing.assert_frame_equal(loaded.reconstruct(stream), estimator.reconstruct(stream))
        assert [len(n.history) for n in loaded.nets_] == [len(n.history) for n in estimator.nets_]
    with zipfile.ZipFile(path) as archive:
        assert set(archive.namelist()) == {"config.json", ARRAYS}
        safetensors.numpy.load(archive.read(ARRAYS))


def test_loaded_spot_threshold_keeps_its_streaming_state(tmp_path):
    from aepipe.sensor import WindowedPCA
    from aepipe.thresholds import SPOTThreshold

    estimator = WindowedPCA(width=8, statistic="q", threshold=SPOTThreshold(q=1e-3))
    estimator.fit(_sensor_stream().iloc[:120])
    loaded = aepipe.load(aepipe.save(estimator, tmp_path / "m.zip")).threshold_object_
    original = estimator.threshold_object_
    assert loaded.peaks_ == original.peaks_
    for score in [0.5, 3.0, 1e3, 2.0]:
        assert loaded.update(score) == original.update(score)
        assert loaded.threshold_ == original.threshold_


def test_a_windowed_file_cannot_set_other_than_learned_attributes(tmp_path):
    from aepipe.sensor import WindowedPCA

    path = aepipe.save(WindowedPCA(width=8).fit(_sensor_stream().iloc[:120]), tmp_path / "m.zip")
    _edit_config(path, lambda c: _state(c)["attributes"].update({"score_samples": 1.0}))
    with pytest.raises(ModelFileError, match="cannot be rebuilt.*'score_samples' is not a learned"):
        aepipe.load(path)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_saved_file_gets_the_umask_mode_not_the_temporary_files(X, tmp_path, umask, mode):
    est = Autoencoder(**FAST).fit(X)
    previous = os.umask(umask)
    try:
        path = aepipe.save(est, tmp_path / "m.zip")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_windowed_file_with_a_wrong_net_count_is_a_model_file_error(tmp_path):
    est = aepipe.make_default_sensor_detector(width=8, max_epochs=1, random_state=0)
    path = aepipe.save(est.fit(_sensor_stream().iloc[:120]), tmp_path / "m.zip")
    _edit_config(path, lambda c: _state(c)["nets"].extend([{"history": None}] * 9))
    with pytest.raises(ModelFileError, match="weights hold 1 nets, the config 10"):
        aepipe.load(path)


def test_layer_sizes_that_do_not_fit_the_weights_are_refused_before_allocation(saved):
    # 10^4 x 10^4 hidden units (a 400 MB layer) that the stored weights do not hold.
    _edit_config(saved, lambda c: _state(c)["attributes"].update(
        {"hidden_sizes_": {"__tuple__": [10_000, 10_000]}}))
    with pytest.raises(ModelFileError, match="do not fit the model the config describes"):
        aepipe.load(saved)


def test_a_windowed_file_with_another_width_is_a_model_file_error(tmp_path):
    from aepipe.sensor import WindowedDenoisingAutoencoder

    for est in [aepipe.make_default_sensor_detector(width=8, max_epochs=1, random_state=0),
                WindowedDenoisingAutoencoder(width=8, max_epochs=1, random_state=0)]:
        path = aepipe.save(est.fit(_sensor_stream().iloc[:120]), tmp_path / "m.zip")
        _edit_config(path, lambda c: _state(c)["params"].update({"width": 4000}))
        with pytest.raises(ModelFileError, match="do not fit"):
            aepipe.load(path)


@pytest.mark.parametrize("name", ["BaseThreshold", "make_threshold", "Popen"])
def test_only_exported_threshold_classes_are_built_from_a_file(tmp_path, name):
    from aepipe.sensor import WindowedPCA

    est = WindowedPCA(width=8, statistic="q", threshold="pot").fit(_sensor_stream().iloc[:120])
    path = aepipe.save(est, tmp_path / "m.zip")
    _edit_config(path, lambda c: _state(c)["attributes"]["threshold_object_"]["__object__"]
                 .__setitem__(0, name))
    with pytest.raises(ModelFileError, match=f"class '{name}'.*POTThreshold"):
        aepipe.load(path)
