"""Refactors change no score: every public detector against outputs recorded at c0ea045.

``tests/data/frozen/record.py`` fitted each public detector on fixed inputs at
commit c0ea045 (before the detector-core refactor of issue #14) and stored
what a user reads off it (scores, decisions, labels, offset, per-column
scores) and the model file that commit's ``aepipe.save`` wrote. Here every
detector is fitted again and must give the same outputs, and every old model
file must load and give them too.

A deliberate change of how a detector trains re-records only what a fresh
fit gives, as ``NAME@refit`` (``record.py --refit NAME``); its old model
file must still give the outputs recorded at c0ea045.

Tolerance: relative 1e-6 (the refactor's allowance where a shared helper
reorders float operations); on the machine that recorded them the outputs are
bit-identical. A deliberate score change re-records the file (say so in the
commit) -- it must never be loosened to let a refactor through.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

FROZEN = Path(__file__).parent / "data" / "frozen"
_spec = importlib.util.spec_from_file_location("frozen_record", FROZEN / "record.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

RTOL = 1e-6
RECORDED = np.load(FROZEN / "scores.npz")
CASES = record.cases()


@pytest.fixture(scope="module")
def data():
    return record.inputs()


def _check(name, outputs):
    keys = sorted(k.split("/", 1)[1] for k in RECORDED.files if k.split("/", 1)[0] == name)
    assert keys, f"nothing recorded for {name}"
    assert sorted(outputs) == keys
    for key in keys:
        expected, got = RECORDED[f"{name}/{key}"], np.asarray(outputs[key])
        if key == "predict":
            np.testing.assert_array_equal(got, expected, err_msg=f"{name}: {key}")
        else:
            scale = np.abs(expected).max() if expected.size else 1.0
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * scale,
                                       err_msg=f"{name}: {key}")


def test_every_public_detector_is_recorded():
    import aepipe
    from aepipe.estimators._base import BaseDetector
    from aepipe.sensor._base import BaseWindowedDetector

    public = {name for name in aepipe.__all__
              if isinstance(getattr(aepipe, name), type)
              and issubclass(getattr(aepipe, name), (BaseDetector, BaseWindowedDetector))}
    covered = {type(model).__name__ for _, model in CASES.values()}
    assert public <= covered, (
        f"not recorded: {sorted(public - covered)}. Add a case to cases() in "
        "tests/data/frozen/record.py and record it alone: python tests/data/frozen/record.py NAME")


@pytest.mark.parametrize("name", sorted(CASES))
def test_scores_unchanged(name, data):
    from sklearn.base import clone

    which, model = CASES[name]
    model = clone(model).fit(data[which])
    refit = f"{name}@refit"
    recorded_as = refit if any(k.startswith(f"{refit}/") for k in RECORDED.files) else name
    _check(recorded_as, record.outputs(model, data[which]))


@pytest.mark.parametrize("name", sorted(p.stem for p in FROZEN.glob("*.aepipe")))
def test_old_model_files_load(name, data):
    import aepipe

    which, _ = CASES[name]
    model = aepipe.load(FROZEN / f"{name}.aepipe")
    _check(name, record.outputs(model, data[which]))
