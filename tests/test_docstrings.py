"""The Examples sections of the public docstrings run and give what they show."""

import doctest
import importlib
import inspect

import pytest
import torch

torch.set_num_threads(1)

MODULES = [
    "aepipe.estimators._autoencoders",
    "aepipe.estimators._denoiser",
    "aepipe.estimators._pca",
    "aepipe.scoring._explain",
    "aepipe.scoring._scorers",
    "aepipe.sensor._base",
    "aepipe.sensor._default",
    "aepipe.sensor._neural",
    "aepipe.sensor._pca",
    "aepipe.sensor._series",
    "aepipe.sensor._windows",
]
PUBLIC = ["aepipe.estimators", "aepipe.scoring", "aepipe.sensor"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no examples"


@pytest.mark.parametrize("package", PUBLIC)
def test_every_public_class_has_runnable_examples(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if not inspect.isclass(obj) or name in ("BaseDetector", "BaseWindowedDetector"):
            continue
        doc = inspect.getdoc(obj)
        for section in ("Parameters\n----------", "Examples\n--------"):
            assert section in doc, f"{name} lacks a {section.splitlines()[0]} section"
        assert doctest.DocTestParser().get_examples(doc), f"{name} has no runnable example"


@pytest.mark.parametrize("package", PUBLIC)
def test_every_public_function_is_documented(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
