"""The documentation: the site builds with warnings as errors, the user guide's examples
run, the version has one source, the changelog fragments compile."""

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aepipe

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDE_BLOCKS = [
    (path.name, code)
    for path in sorted((DOCS / "guide").glob("*.md")) + [DOCS / "walkthrough.md"]
    for code in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
]
DOCS_EXTRA = ("sphinx", "numpydoc", "pydata_sphinx_theme", "myst_nb", "towncrier")
missing = [name for name in DOCS_EXTRA if importlib.util.find_spec(name) is None]
needs_docs_extra = pytest.mark.skipif(
    bool(missing), reason=f"the docs extra is not installed ({', '.join(missing)} missing): "
                          "pip install -c constraints.txt -e '.[docs]'")


@pytest.mark.slow  # about two minutes: imports every module and renders the notebooks
@needs_docs_extra
def test_docs_build_without_warnings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    html = tmp_path / "html"
    for page in ("index.html", "walkthrough.html", "api/estimators.html", "guide/tables.html",
                 "notebooks/01_quickstart_table.html", "changelog.html"):
        assert (html / page).is_file(), page
    api = (html / "api" / "estimators.html").read_text()
    assert "AutoencoderEnsemble" in api and "Parameters" in api
    # The notebooks are rendered with their committed outputs (plots), not executed.
    assert "<img" in (html / "notebooks" / "01_quickstart_table.html").read_text()
    changelog = (html / "changelog.html").read_text()
    assert "Unreleased" in changelog and "predicted_anomaly" in changelog


@pytest.mark.parametrize("name, code", GUIDE_BLOCKS, ids=[name for name, _ in GUIDE_BLOCKS])
def test_user_guide_python_examples_run(name, code):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(code, name, "exec"), {"__name__": "__guide__"})
    finally:
        torch.set_num_threads(threads)


def test_the_version_has_one_source():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "aepipe._version.__version__"}
    assert importlib.metadata.version("aepipe") == aepipe.__version__


@pytest.mark.skipif(importlib.util.find_spec("towncrier") is None,
                    reason="towncrier (the docs extra) is not installed")
def test_changelog_fragments_compile():
    names = [p.name for p in (ROOT / "changes").iterdir() if p.name != "README.md"]
    assert names, "changes/ holds the unreleased changes"
    for name in names:
        # <issue>.<type>[.<n>].md, or +<name>.<type>.md for a change with no issue
        assert re.fullmatch(r"(\d+|\+[a-z0-9-]+)\.(feature|bugfix|removal|doc|misc)(\.\d+)?\.md",
                            name), name
    done = subprocess.run([sys.executable, "-m", "towncrier", "build", "--draft", "--version",
                           "next"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "predicted_anomaly" in done.stdout


@pytest.mark.parametrize("package", ["estimators", "sensor", "scoring", "thresholds",
                                     "datasets", "pipelines", "tracking", "distributed"])
def test_every_public_class_and_function_is_in_the_api_reference(package):
    import importlib
    import inspect

    module = importlib.import_module(f"aepipe.{package}")
    reference = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.rst"))
    missing_names = [
        name for name in module.__all__
        if not name.startswith("Base")
        and (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)))
        and f"aepipe.{package}.{name}" not in reference and f"aepipe.{name}\n" not in reference
    ]
    assert not missing_names, f"add them to docs/api/{package}.rst: {missing_names}"
