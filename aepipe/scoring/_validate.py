"""Split a table into the rows a model can score and a report of the rejected ones."""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd

REPORT_COLUMNS = ["row", "column", "reason"]
_COLUMN = re.compile(r"[Cc]olumn '([^']*)'")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def split_valid_rows(model, frame: pd.DataFrame, *,
                     score: Callable[[pd.DataFrame], object] | None = None):
    """Rows of ``frame`` that ``model`` accepts, and a report of those it rejects.

    Scoring is tried on the whole frame first; only when it raises a
    ``ValueError`` (aepipe's ``DataValidationError`` and scikit-learn's input
    errors are ones) is the frame bisected, so a chunk with a few bad rows
    costs O(bad rows * log n) scoring calls and a clean chunk costs one.

    Parameters
    ----------
    model : fitted detector or Pipeline ending in one
        Used by the default ``score``, :func:`aepipe.scoring.score_frame`.
    frame : DataFrame
        Its index labels are reported as row numbers (the CLI passes the
        0-based row number in the file).
    score : callable or None, default=None
        ``score(sub_frame)`` raising ``ValueError`` for input it rejects (e.g.
        a pyfunc model's ``lambda f: m.predict(None, f)``).

    Returns
    -------
    good : DataFrame
        The accepted rows of ``frame``, in order.
    rejected : DataFrame with columns ``row, column, reason``
        One line per rejected row: its index label, the column named by the
        error (empty when the error names none) and the error's first line.
    """
    if score is None:
        from ._explain import score_frame

        def score(sub):
            return score_frame(model, sub, top_k=0)

    keep: list[pd.DataFrame] = []
    rejected: list[dict] = []

    def visit(part: pd.DataFrame) -> None:
        if len(part) == 0:
            return
        try:
            score(part)
        except ValueError as error:
            if len(part) == 1:
                reason = _first_line(error)
                match = _COLUMN.search(reason)
                rejected.append({"row": part.index[0], "column": match.group(1) if match else "",
                                 "reason": reason})
                return
            middle = len(part) // 2
            visit(part.iloc[:middle])
            visit(part.iloc[middle:])
            return
        keep.append(part)

    visit(frame)
    good = pd.concat(keep) if keep else frame.iloc[:0]
    return good, pd.DataFrame(rejected, columns=REPORT_COLUMNS)
