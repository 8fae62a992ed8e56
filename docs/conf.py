"""Sphinx configuration: the API reference from the numpydoc docstrings, the user guide,
and the notebooks with their stored outputs (never executed here).

Build with ``bash docs/build.sh`` (warnings are errors); needs the ``docs`` extra.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
# MLflow and git stay quiet when autodoc imports aepipe.tracking.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")

from aepipe import __version__  # noqa: E402  (the one source of the version)

project = "aepipe"
author = "aepipe developers"
copyright = "aepipe developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_generated", "build.sh", "**/.ipynb_checkpoints"]

# Notebooks are committed executed: render their stored outputs, run nothing.
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autodoc_typehints = "none"  # the numpydoc sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"aepipe {version}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_toc_level": 2,
}
html_static_path = []


def _unreleased_changes() -> str:
    """The changelog fragments in changes/, rendered by towncrier as a draft."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "towncrier", "build", "--draft", "--version",
             "unreleased"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"towncrier could not render changes/: {exc}") from exc
    text = done.stdout
    start = text.find("## ")
    if start < 0:
        return "## Unreleased\n\nNo changes yet.\n"
    body = text[start:].split("\n", 1)[1]  # towncrier's title carries today's date
    return "## Unreleased\n" + body


def _write_generated(app):
    folder = DOCS / "_generated"
    folder.mkdir(exist_ok=True)
    target = folder / "unreleased.md"
    text = _unreleased_changes()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


# A fitted attribute's name ends in "_" (scikit-learn's convention), which reStructuredText
# reads as a link ("latent_dims_" -> unknown target). Escape it in the docstrings' prose;
# literal text (``...``) and doctest lines are left alone.
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`\\])([A-Za-z]\w*?)_(?=[\s,.;:)\]]|$)")


def _escape_fitted_attributes(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if line.lstrip().startswith((">>>", "...")):
            continue
        parts = line.split("``")
        parts[::2] = [_TRAILING_UNDERSCORE.sub(r"\1\\_", part) for part in parts[::2]]
        lines[i] = "``".join(parts)


def setup(app):
    app.connect("builder-inited", _write_generated)
    app.connect("autodoc-process-docstring", _escape_fitted_attributes)
