"""Column layout: from a user's table to the matrix a network sees, and back.

Each original column gets a *kind* that fixes its likelihood p(x|h):

- ``"gaussian"``  real values, standardised with training statistics;
- ``"bernoulli"`` booleans, encoded 0/1;
- ``"categorical"`` a one-hot group, decoded by a softmax.

The layout remembers, for every original column, its slice of the encoded
matrix, so per-feature scores are reported per original column (a one-hot
group is one column) and reconstructions come back with the input's columns
and dtypes.

What a cell may hold (the policy, enforced here with errors that name the
column, the row and the fix):

- numbers, booleans and categories (text or any other hashable label); an
  ``object`` column holding numbers only -- ``decimal.Decimal`` included -- is
  numeric (converted to float64), one mixing numbers with text is refused;
- dates, times and durations (``datetime64``/``timedelta64`` columns, or
  ``datetime.date``/``datetime``/``time``/``timedelta`` objects) are refused
  unless declared categorical: read as categories, every new date would be
  "unseen". Convert them to numbers (a timestamp, the day of year) or drop them;
- a cell holding several values (a list, tuple, dict, set or array) is
  refused: expand it into columns or drop it;
- column names are unique; in a mixed-type table they are strings or
  integers, compared as given (``0`` and ``"0"`` differ), never tuples or a
  MultiIndex. Rows are taken in order, whatever the index.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd

from ._standardize import standardization
from .exceptions import DataValidationError

GAUSSIAN = "gaussian"
BERNOULLI = "bernoulli"
CATEGORICAL = "categorical"
FEATURE_KINDS = (GAUSSIAN, BERNOULLI, CATEGORICAL)

# float32 is what the network computes in; larger magnitudes become inf.
_FLOAT32_LIMIT = float(np.finfo(np.float32).max) / 16


@dataclass(frozen=True)
class Column:
    """One original column and where it lives in the encoded matrix."""

    name: object  # the user's column name as given: a str, or an int
    kind: str
    start: int
    stop: int
    categories: tuple = ()
    ordered_categorical: bool = False
    was_categorical_dtype: bool = False
    dtype: object = None  # a Gaussian column's numeric dtype, restored by decode
    # A categorical column with many categories is encoded by its category's index in
    # one position (the network still sees a one-hot group, expanded a batch at a time).
    indexed: bool = False

    @property
    def n_values(self) -> int:
        """Width of the column's one-hot group as the network sees it (1 if not categorical)."""
        return len(self.categories) if self.kind == CATEGORICAL else 1


def _is_bool_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series.dtype)


def infer_kind(series: pd.Series) -> str:
    """Kind of a DataFrame column from its dtype."""
    dtype = series.dtype
    if _is_bool_dtype(series):
        return BERNOULLI
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(dtype):
        return GAUSSIAN
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataValidationError(
            f"Column {series.name!r} has dtype {dtype}; aepipe models numbers, booleans "
            "and categories. Convert it to a number (e.g. seconds since an origin) or drop it."
        )
    if pd.api.types.is_object_dtype(dtype):
        return _object_kind(series)
    if pd.api.types.is_string_dtype(dtype):
        return CATEGORICAL
    raise DataValidationError(
        f"Column {series.name!r} has unsupported dtype {dtype}; convert it to numbers, "
        "booleans or a pandas 'category'."
    )


def _is_number(value) -> bool:
    return (isinstance(value, (Real, decimal.Decimal))
            and not isinstance(value, (bool, np.bool_)))


# Cell values aepipe refuses in an inferred column: dates and times (one category
# per date makes every new date "unseen") and values that hold several values.
_DATE_TYPES = (datetime.date, datetime.time, datetime.timedelta, np.datetime64,
               np.timedelta64, pd.Period)
_CONTAINER_TYPES = (list, tuple, dict, set, frozenset, np.ndarray, pd.Series, pd.DataFrame)


def _is_container(value) -> bool:
    return isinstance(value, _CONTAINER_TYPES) or not isinstance(value, Hashable)


def _container_error(series: pd.Series, name):
    """The error for the first cell holding several values (a list, dict ...), or None."""
    for row, value in enumerate(series.to_numpy(dtype=object)):
        if _is_container(value):
            return DataValidationError(
                f"Column {name!r} has the {type(value).__name__} {_short(value)} at "
                f"{_position(series.index, row)}; a cell must hold one number, boolean or "
                "category. Expand the values into separate columns (e.g. "
                f"pandas.DataFrame(X[{name!r}].tolist())) or drop the column."
            )
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _object_kind(series: pd.Series) -> str:
    """Kind of an object column: numbers only -> Gaussian, no numbers -> categorical.

    A column that mixes numbers with text is almost always a numeric column with
    dirty entries; one category per distinct number would hide that, so say so.
    Dates and cells holding several values are refused (see the module docs).
    """
    error = _container_error(series, series.name)
    if error is not None:
        raise error
    cells = series.to_numpy(dtype=object)
    positions = np.flatnonzero(~pd.isna(cells))  # rows in order, whatever the index
    values = cells[positions]
    is_date = np.fromiter((isinstance(v, _DATE_TYPES) for v in values), dtype=bool,
                          count=len(values))
    if is_date.any():
        row = int(positions[np.flatnonzero(is_date)[0]])
        raise DataValidationError(
            f"Column {series.name!r} holds dates or times (the value {cells[row]!r} at "
            f"{_position(series.index, row)}); aepipe models numbers, booleans and "
            "categories, and read as categories every new date would be unseen. Convert "
            "the column to numbers (e.g. a timestamp, or the day of year with "
            f"pandas.to_datetime(X[{series.name!r}]).dt.dayofyear) or drop it; declare "
            f"feature_types={{{series.name!r}: 'categorical'}} if its values are labels."
        )
    is_number = np.fromiter((_is_number(v) for v in values), dtype=bool, count=len(values))
    if len(values) and is_number.all():
        return GAUSSIAN
    if is_number.any():
        row = int(positions[np.flatnonzero(~is_number)[0]])
        raise DataValidationError(
            f"Column {series.name!r} mixes numbers and non-numbers: it has the value "
            f"{cells[row]!r} at {_position(series.index, row)}. Clean or "
            "convert the column to numbers, or declare it categorical with "
            f"feature_types={{{series.name!r}: 'categorical'}} when fitting."
        )
    return CATEGORICAL


def check_column_names(X: pd.DataFrame, *, mixed: bool) -> None:
    """Refuse column names aepipe cannot match columns by.

    Always: duplicated names, and names mixing strings with other types (as
    scikit-learn's ``validate_data`` does). For a mixed-type table (``mixed``),
    whose columns are looked up by name: only str or int names, as given.
    """
    columns = X.columns
    if columns.has_duplicates:
        duplicated = list(dict.fromkeys(columns[columns.duplicated()]))
        raise DataValidationError(
            f"X has duplicated column names {duplicated!r}; aepipe matches and reports "
            "columns by name, so each needs its own. Rename them (e.g. "
            "X.columns = [...] with unique names) or drop the repeated columns "
            "(X.loc[:, ~X.columns.duplicated()])."
        )
    if isinstance(columns, pd.MultiIndex):
        if mixed:
            raise DataValidationError(
                f"X has MultiIndex columns ({columns.nlevels} levels, e.g. "
                f"{tuple(_plain_name(v) for v in columns[0])!r}); aepipe needs flat column "
                "names in a table with non-numeric columns. Join the levels into strings, "
                "e.g. X.columns = ['_'.join(map(str, name)) for name in X.columns]."
            )
        return
    is_str = np.fromiter((isinstance(c, str) for c in columns), dtype=bool, count=len(columns))
    if is_str.any() and not is_str.all():
        other = columns[int(np.flatnonzero(~is_str)[0])]
        raise DataValidationError(
            f"X mixes string and non-string column names (e.g. {other!r} of type "
            f"{type(other).__name__}); use strings for all of them, e.g. "
            "X.columns = X.columns.astype(str)."
        )
    if mixed and not is_str.all():
        for name in columns:
            if not isinstance(name, Integral) or isinstance(name, (bool, np.bool_)):
                raise DataValidationError(
                    f"X has the column name {name!r} of type {type(name).__name__}; in a table "
                    "with non-numeric columns aepipe needs string (or integer) column "
                    "names. Use strings, e.g. X.columns = X.columns.astype(str)"
                    + (" or join a tuple's parts." if isinstance(name, tuple) else ".")
                )


def needs_tabular_layout(X, feature_types) -> bool:
    """True when X must go through the per-column (mixed-type) path."""
    if feature_types:
        return True
    if not isinstance(X, pd.DataFrame):
        return False
    return any(
        _is_bool_dtype(X[c]) or not pd.api.types.is_numeric_dtype(X[c].dtype) for c in X.columns
    )


# Identifier columns. A unique string is a category every new record misses
# (it cannot be scored); a row number or key as a number ties the score to where a
# record sits. Refused at fit unless the column's kind is declared in feature_types.
_ID_MIN_ROWS = 20  # fewer rows: unique values are normal
_ID_DISTINCT_SHARE = 0.95  # a text column with more distinct values is an identifier or free text
_ID_NAMES = {"id", "uuid", "guid", "key", "idx", "index", "row", "row_id", "rownum",
             "row_number", "record", "record_id"}


def _named_like_id(name) -> bool:
    text = str(name)
    lower = text.lower()
    return (lower in _ID_NAMES or lower.endswith(("_id", "-id", " id", ".id", "_key", "_uuid"))
            or (len(text) > 2 and text[-2:] in ("Id", "ID") and text[-3].isalnum()))


def id_like_reason(series: pd.Series) -> str | None:
    """Why a column looks like a record identifier, or None.

    Text (or category) columns with more than 95 % distinct values among at
    least 20 non-missing ones; integer columns whose values are all distinct
    and either consecutive (a row number) or under an identifier's name
    (``id``, ``customer_id``, ``orderId`` ...). Floats, booleans and dates
    are never identifiers here.
    """
    dtype = series.dtype
    values = series.dropna()
    n = len(values)
    if n < _ID_MIN_ROWS or _is_bool_dtype(series):
        return None
    if pd.api.types.is_integer_dtype(dtype):
        if values.nunique() < n:
            return None
        low, high = int(values.min()), int(values.max())
        if high - low == n - 1:
            return (f"the consecutive integers {low} to {high}, one per row: as a number it "
                    "would tie each score to the record's position")
        if _named_like_id(series.name):
            return (f"{n} distinct integers in {n} rows under an identifier's name: as a number "
                    "it would tie each score to the record's key")
        return None
    textual = isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)
    if not textual:
        return None
    if pd.api.types.is_object_dtype(dtype) and not all(isinstance(v, str) for v in values):
        return None  # numbers, mixed or container cells: kind inference says what is wrong
    try:
        distinct = values.nunique()
    except TypeError:  # unhashable cells
        return None
    if distinct <= _ID_DISTINCT_SHARE * n:
        return None
    return (f"{distinct} distinct values in {n} rows: as a category nearly every new "
            "record would hold an unseen value and fail to score")


def id_like_columns(frame: pd.DataFrame, *, skip=()) -> dict:
    """``{column: reason}`` for the columns of ``frame`` that look like identifiers.

    Columns named in ``skip`` (declared in ``feature_types``, a windowed
    detector's time column ...) are not checked. See :func:`id_like_reason`.
    """
    skipped = set(skip)
    found = {}
    for name in frame.columns:
        if name in skipped:
            continue
        reason = id_like_reason(frame[name])
        if reason is not None:
            found[_plain_name(name)] = reason
    return found


def refuse_id_columns(frame: pd.DataFrame, *, skip=()) -> None:
    """Raise a DataValidationError naming the first identifier-like column, and the fix."""
    for name, reason in id_like_columns(frame, skip=skip).items():
        raise DataValidationError(
            f"Column {name!r} looks like a record identifier ({reason}). Drop it before "
            f"fitting, e.g. X.drop(columns=[{name!r}]) (keep it aside to name records), or "
            f"declare its kind, e.g. feature_types={{{name!r}: 'categorical'}}, if it really "
            "is a feature."
        )


def _position(index, row: int) -> str:
    """``row 3`` or ``row 3 (index 'b')``: the row's position, and its label if different."""
    if index is None:
        return f"row {row}"
    label = index[row]
    if isinstance(label, np.generic):
        label = label.item()  # 'index 1', not 'index np.int64(1)'
    same = (isinstance(label, Integral) and not isinstance(label, bool)
            and int(label) == row)
    return f"row {row}" if same else f"row {row} (index {label!r})"


def _plain_name(name):
    """A column name as a plain Python value (numpy scalars -> int/str), else as given."""
    return name.item() if isinstance(name, np.generic) else name


def _numeric_column(series: pd.Series, name: str, allow_missing: bool = False) -> np.ndarray:
    if _is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            converted = pd.to_numeric(series, errors="coerce")
        except TypeError:  # e.g. a tuple holding a list: pandas hashes the cells
            converted = None
        bad = None if converted is None else converted.isna() & series.notna()
        if bad is None or bad.any():
            error = _container_error(series, name)
            if error is not None:
                raise error
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataValidationError(
                f"Column {name!r} must be numeric but has the value {series.iloc[row]!r} at "
                f"{_position(series.index, row)}. Clean or convert the column to numbers, or "
                f"declare it categorical with feature_types={{{name!r}: 'categorical'}} "
                "when fitting."
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite_column(values, name, series.index, allow_missing=allow_missing)
    return values


def check_finite_column(values: np.ndarray, name, index=None, *, allow_missing=False) -> None:
    """Raise a DataValidationError naming the first NaN/inf/too-large entry.

    With ``allow_missing`` NaN entries are accepted (they are missing values,
    see ``handle_missing="mask"``); infinities are still rejected.
    """
    finite = np.isfinite(values)
    if allow_missing:
        finite |= np.isnan(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        where = _position(index, row) if index is not None else f"row {row}"
        if np.isnan(values[row]):
            raise DataValidationError(
                f"Column {name!r} has a missing value (NaN) at {where}. aepipe needs finite "
                "numbers: impute or drop missing values first (e.g. sklearn.impute."
                "SimpleImputer in the pipeline), or fit with handle_missing='mask' to model "
                "missing values."
            )
        fix = ("replace it by NaN (this model handles missing values)" if allow_missing else
               "replace it by NaN and fit with handle_missing='mask', impute it")
        raise DataValidationError(
            f"Column {name!r} has {values[row]} at {where}. aepipe needs finite numbers: "
            f"{fix}, or drop the row."
        )
    with np.errstate(invalid="ignore"):
        too_large = np.abs(values) > _FLOAT32_LIMIT
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        where = _position(index, row) if index is not None else f"row {row}"
        raise DataValidationError(
            f"Column {name!r} has the value {values[row]:g} at {where}, beyond the float32 "
            f"range the network computes in (|x| <= {_FLOAT32_LIMIT:.3g}). Rescale the column "
            "(e.g. a log transform) before fitting."
        )


@dataclass
class TabularLayout:
    """How the columns of a table map to the encoded matrix (see module docs)."""

    columns: list[Column]
    standardize: bool = True
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    numeric_only: bool = True

    # ---------------------------------------------------------------- build
    @classmethod
    def from_array(cls, X: np.ndarray, *, names, standardize: bool,
                   dtypes=None) -> TabularLayout:
        """Layout for an all-real matrix (every column Gaussian).

        ``dtypes``: the input frame's column dtypes, kept so that records
        generated from the model come back in them (None for arrays).
        """
        dtypes = [None] * len(names) if dtypes is None else [_numeric_dtype(d) for d in dtypes]
        columns = [Column(str(name), GAUSSIAN, j, j + 1, dtype=dtype)
                   for j, (name, dtype) in enumerate(zip(names, dtypes))]
        layout = cls(columns=columns, standardize=standardize, numeric_only=True)
        layout._fit_gaussian_stats(np.asarray(X, dtype=np.float64))
        return layout

    @classmethod
    def from_frame(cls, X, *, feature_types, standardize: bool,
                   allow_missing: bool = False, max_one_hot: int | None = None) -> TabularLayout:
        """Layout for a DataFrame (or array with ``feature_types``) of mixed kinds.

        ``max_one_hot``: a categorical column with more categories is encoded
        by index (one position holding the category's number, see
        :meth:`expansion_plan`) instead of a one-hot group; None: never.
        """
        frame = as_frame(X)
        declared = dict(feature_types or {})
        unknown = [key for key in declared if key not in frame.columns]
        if unknown:
            raise DataValidationError(
                f"feature_types names columns {unknown!r} that are not in X; the columns "
                f"are {list(frame.columns)!r}."
            )
        refuse_id_columns(frame, skip=declared)
        columns, start = [], 0
        for name in frame.columns:
            series = frame[name]
            kind = declared.get(name)
            if not kind:
                kind = infer_kind(series)
            elif pd.api.types.is_object_dtype(series.dtype):
                error = _container_error(series, name)  # a declared kind skips inference
                if error is not None:
                    raise error
            name = _plain_name(name)
            if kind not in FEATURE_KINDS:
                raise DataValidationError(
                    f"feature_types[{name!r}]={kind!r} is not one of {FEATURE_KINDS}."
                )
            if kind == CATEGORICAL:
                categories = _categories_of(series, name, allow_missing)
                is_cat = isinstance(series.dtype, pd.CategoricalDtype)
                indexed = max_one_hot is not None and len(categories) > max_one_hot
                column = Column(
                    name, kind, start, start + (1 if indexed else len(categories)),
                    tuple(categories),
                    ordered_categorical=bool(is_cat and series.dtype.ordered),
                    was_categorical_dtype=is_cat, indexed=indexed,
                )
            else:
                column = Column(name, kind, start, start + 1,
                                dtype=_numeric_dtype(series.dtype))
            columns.append(column)
            start = column.stop
        layout = cls(columns=columns, standardize=standardize, numeric_only=False)
        gaussian = [c for c in columns if c.kind == GAUSSIAN]
        raw = np.column_stack(
            [_numeric_column(frame[c.name], c.name, allow_missing) for c in gaussian]
        ) if gaussian else np.zeros((len(frame), 0))
        layout._fit_gaussian_stats(raw)
        # Validate the rest (booleans, categories) now, so fit fails on bad input.
        layout.encode(frame, allow_missing=allow_missing)
        return layout

    def _fit_gaussian_stats(self, raw: np.ndarray) -> None:
        self.center, self.scale = standardization(raw, standardize=self.standardize)

    # ----------------------------------------------------------- properties
    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def n_encoded(self) -> int:
        return self.columns[-1].stop if self.columns else 0

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def widths(self) -> list[tuple[str, int]]:
        """``(kind, width)`` per original column, what the likelihood head needs.

        The widths the network sees: a categorical column encoded by index
        is a one-hot group of all its categories there.
        """
        return [(c.kind, c.n_values) for c in self.columns]

    @property
    def n_expanded(self) -> int:
        """Width of the network's input: every categorical column one-hot."""
        return int(sum(c.n_values for c in self.columns))

    @property
    def sizing_width(self) -> int:
        """How many inputs ``"auto"`` network sizes count.

        One per real or boolean column and per one-hot position; a
        categorical column encoded by index counts ``ceil(log2(n_categories))``
        (the bits that name a category): thousands of categories are one
        column of information, not thousands.
        """
        return int(sum(max(1, math.ceil(math.log2(c.n_values))) if c.indexed
                       else c.stop - c.start for c in self.columns))

    def expansion_plan(self):
        """How encoded rows become the network's one-hot rows; None when they already are.

        Returns a dict: ``dense_from``/``dense_to`` (int arrays), the encoded
        positions copied as they are and where they go; ``indexed``, a list of
        ``(encoded position, first one-hot position, n_categories)`` for the
        columns encoded by index; ``n_expanded``.
        """
        if not any(c.indexed for c in self.columns):
            return None
        dense_from, dense_to, indexed, position = [], [], [], 0
        for c in self.columns:
            if c.indexed:
                indexed.append((c.start, position, c.n_values))
            else:
                dense_from += range(c.start, c.stop)
                dense_to += range(position, position + c.stop - c.start)
            position += c.n_values
        return {"dense_from": np.asarray(dense_from, dtype=np.int64),
                "dense_to": np.asarray(dense_to, dtype=np.int64),
                "indexed": indexed, "n_expanded": position}

    @property
    def gaussian_positions(self) -> np.ndarray:
        return np.array([c.start for c in self.columns if c.kind == GAUSSIAN], dtype=np.int64)

    # ---------------------------------------------------------- transforms
    def observed(self, encoded: np.ndarray) -> np.ndarray:
        """Boolean (n_samples, n_columns): which original columns are observed.

        Missing entries are NaN in the encoded matrix (see :meth:`encode`).
        """
        return ~np.isnan(encoded[:, [c.start for c in self.columns]])

    def unknown_mask(self, encoded: np.ndarray):
        """Boolean (n_samples, n_columns): categorical entries holding a category unseen at fit.

        Such entries are encoded as -1 (``handle_unknown="score"``, see
        :meth:`encode`); None when the layout has no categorical column.
        """
        if not any(c.kind == CATEGORICAL for c in self.columns):
            return None
        starts = [c.start for c in self.columns]
        is_categorical = np.array([c.kind == CATEGORICAL for c in self.columns])
        with np.errstate(invalid="ignore"):
            return (encoded[:, starts] < 0) & is_categorical

    def encode(self, X, *, allow_missing: bool = False,
               allow_unknown: bool = False) -> np.ndarray:
        """Encoded float32 matrix (n_samples, n_encoded) for validated input X.

        With ``allow_missing`` a missing entry (NaN, None, pd.NA) is kept as NaN
        at its encoded positions (the whole one-hot group of a categorical
        column): the NaNs are the missing-value mask (:meth:`observed`).
        Without it, a missing entry raises a :class:`DataValidationError`.
        With ``allow_unknown`` a category not seen at fit is encoded as -1 at
        its positions (:meth:`unknown_mask`); without it, it is an error. A
        categorical column encoded by index holds the category's number.
        """
        if self.numeric_only:
            values = np.asarray(X)
            # Standardise in the input's precision: float32 input stays float32 (one
            # pass fewer over the data); float64 is centred in float64 before the cast,
            # so large offsets (timestamps, ids) keep their resolution.
            if values.dtype != np.float32:
                values = values.astype(np.float64, copy=False)
            with np.errstate(over="ignore", invalid="ignore"):
                encoded = values - self.center.astype(values.dtype)
                encoded /= self.scale.astype(values.dtype)
                encoded = encoded.astype(np.float32, copy=False)
            if np.isfinite(encoded).all():
                return encoded
            bad_mask = ~np.isfinite(encoded)
            if allow_missing:
                bad_mask &= ~np.isnan(values)
            if bad_mask.any():
                bad = np.argwhere(bad_mask)[0]
                check_finite_column(values[:, bad[1]], self.columns[bad[1]].name,
                                    allow_missing=allow_missing)
                raise DataValidationError(
                    f"Column {self.columns[bad[1]].name!r} at row {bad[0]} overflows float32 "
                    "after standardisation; rescale it before fitting."
                )
            return encoded
        frame = as_frame(X, self.names)
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            # Reached with non-string names, which scikit-learn does not check.
            present = list(frame.columns)
            shown = present if len(present) <= 10 else [*present[:10], "..."]
            raise DataValidationError(
                f"X has no column {missing[0]!r}, which the model was fitted on (X has the "
                f"columns {shown!r}); column names are compared as given, so 0 and '0' "
                "differ. Pass the columns the model was fitted on."
            )
        out = np.zeros((len(frame), self.n_encoded), dtype=np.float32)
        gaussian_index = 0
        for column in self.columns:
            series = frame[column.name]
            if column.kind == GAUSSIAN:
                values = _numeric_column(series, column.name, allow_missing)
                center = self.center[gaussian_index]
                scale = self.scale[gaussian_index]
                gaussian_index += 1
                out[:, column.start] = (values - center) / scale
            elif column.kind == BERNOULLI:
                out[:, column.start] = _binary_column(series, column.name, allow_missing)
            else:
                codes = _category_codes(series, column, allow_missing, allow_unknown)
                known = codes >= 0
                if column.indexed:
                    out[:, column.start] = codes
                else:
                    out[np.flatnonzero(known), column.start + codes[known]] = 1.0
                if not known.all():
                    missing = series.isna().to_numpy()
                    out[~known & missing, column.start:column.stop] = np.nan
                    out[~known & ~missing, column.start:column.stop] = -1.0
        bad_mask = ~np.isfinite(out)
        if allow_missing:
            bad_mask &= ~np.isnan(out)
        if bad_mask.any():
            bad = np.argwhere(bad_mask)[0]
            raise DataValidationError(
                f"An encoded value at row {bad[0]} overflows float32 after standardisation; "
                "rescale the numeric columns before fitting."
            )
        return out

    def decode(self, mean: np.ndarray, *, like=None):
        """Back from the encoded space to the user's columns.

        ``mean`` holds, per encoded position, the mean of p(x|h): standardised
        values for Gaussian columns, probabilities for Bernoulli and categorical
        ones. Numeric layouts return an array (a DataFrame when ``like`` is one);
        mixed layouts return a DataFrame with the fitted columns and dtypes.
        """
        mean = np.asarray(mean, dtype=np.float64)
        if self.numeric_only:
            values = mean * self.scale + self.center
            if isinstance(like, pd.DataFrame):
                out = pd.DataFrame(values, columns=like.columns, index=like.index)
                for j, dtype in enumerate(like.dtypes):
                    if _numeric_dtype(dtype) is not None:
                        out.isetitem(j, _as_dtype(values[:, j], dtype))
                return out
            return values
        index = like.index if isinstance(like, pd.DataFrame) else None
        data, gaussian_index = {}, 0
        for column in self.columns:
            block = mean[:, column.start:column.stop]
            if column.kind == GAUSSIAN:
                data[column.name] = _as_dtype(
                    block[:, 0] * self.scale[gaussian_index] + self.center[gaussian_index],
                    column.dtype,
                )
                gaussian_index += 1
            elif column.kind == BERNOULLI:
                data[column.name] = block[:, 0] >= 0.5
            else:
                categories = np.asarray(column.categories, dtype=object)
                # A column encoded by index carries the most probable category's number.
                picked = categories[np.rint(block[:, 0]).astype(np.int64) if column.indexed
                                    else block.argmax(axis=1)]
                if column.was_categorical_dtype:
                    picked = pd.Categorical(
                        picked, categories=list(column.categories),
                        ordered=column.ordered_categorical,
                    )
                data[column.name] = picked
        return pd.DataFrame(data, index=index)

    def column_frame(self, per_column: np.ndarray, *, like=None) -> pd.DataFrame:
        """A (n_samples, n_columns) array as a DataFrame named by original column.

        An all-numeric layout reads its columns by position: named as ``like``'s
        columns when it is a DataFrame (a frame with non-string names, 0, 1, ...,
        keeps them, as ``reconstruct`` does, instead of x0, x1, ...).
        """
        if isinstance(like, pd.DataFrame):
            positional = self.numeric_only and len(like.columns) == len(self.names)
            names = like.columns if positional else self.names
            return pd.DataFrame(per_column, columns=names, index=like.index)
        return pd.DataFrame(per_column, columns=self.names)


def _numeric_dtype(dtype):
    """The dtype a reconstruction of a numeric column is cast back to, or None."""
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf" and dtype != np.float64:
        return dtype
    return None


def _as_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """Reconstructed values in a column's original dtype, clipped to its range.

    Integers are rounded, then clipped to the largest float64 inside the
    dtype's range: float64 rounds int64's and uint64's maximum *up* (to 2**63
    and 2**64), which would wrap around to the minimum on the cast. Floats
    narrower than float64 are clipped to their finite range instead of
    overflowing to inf.
    """
    if dtype is None:
        return values
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        high = float(info.max)
        if int(high) > info.max:
            high = float(np.nextafter(high, -np.inf))
        values = np.clip(np.rint(values), float(info.min), high)
    elif dtype.kind == "f":
        info = np.finfo(dtype)
        values = np.clip(values, float(info.min), float(info.max))
    return values.astype(dtype)


def as_frame(X, names=None) -> pd.DataFrame:
    """X as a DataFrame; arrays get string column names ``x0, x1, ...`` or ``names``."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X, dtype=object) if not hasattr(X, "dtype") else np.asarray(X)
    if array.ndim != 2:
        raise DataValidationError(
            f"Expected a 2-D table (n_samples, n_features), got an array of shape {array.shape}."
        )
    columns = list(names) if names is not None else [f"x{j}" for j in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns)


def _categories_of(series: pd.Series, name, allow_missing: bool = False) -> list:
    if allow_missing:
        series = series.dropna()
    if series.isna().any():
        row = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise DataValidationError(
            f"Column {name!r} has a missing value at {_position(series.index, row)}. Fill it "
            "with an explicit category (e.g. 'missing') or drop the row."
        )
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.dtype.categories)
    values = pd.unique(series.to_numpy(dtype=object))
    try:
        return sorted(values)
    except TypeError:  # mixed types that do not compare: keep a stable order by text
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _category_codes(series: pd.Series, column: Column,
                    allow_missing: bool = False, allow_unknown: bool = False) -> np.ndarray:
    # Index.get_indexer, not pd.Categorical(values, categories): pandas deprecates
    # building a Categorical from values outside its categories (unseen ones here).
    try:
        codes = pd.Index(list(column.categories), dtype=object).get_indexer(
            series.to_numpy(dtype=object))
    except TypeError:  # unhashable cells (a list, dict, set ...)
        error = _container_error(series, column.name)
        if error is None:
            raise
        raise error from None
    codes = np.asarray(codes, dtype=np.int64)  # int8 codes overflow as column offsets
    unknown = codes < 0
    if allow_missing:
        unknown &= series.notna().to_numpy()
    if allow_unknown:
        unknown &= series.isna().to_numpy()  # unseen categories pass (as -1); missing do not
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        value = series.iloc[row]
        known = list(column.categories)
        shown = known if len(known) <= 10 else known[:10] + ["..."]
        what = "a missing value" if pd.isna(value) else f"the category {value!r}"
        raise DataValidationError(
            f"Column {column.name!r} has {what} at {_position(series.index, row)} that was not "
            f"seen during fit (known: {shown}). Map it to a known category or refit on data "
            "that includes it" + ("." if pd.isna(value) else
                                  ", or score it as maximally surprising with "
                                  "handle_unknown='score'.")
        )
    return codes


# Booleans as text, in the spellings pandas' CSV parser reads as booleans (in any
# case): a column is read as text when one of its cells is not a boolean.
_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}


def _binary_column(series: pd.Series, name, allow_missing: bool = False) -> np.ndarray:
    if _is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=np.float32)
    cells = series
    if not pd.api.types.is_numeric_dtype(series.dtype):
        # "True"/"false" count as booleans, "1"/"0.0" as numbers (below), the rest as given.
        cells = pd.Series([_BOOLEAN_TEXT.get(v.lower(), v) if isinstance(v, str) else v
                           for v in series.to_numpy(dtype=object)], dtype=object)
    try:
        values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64,
                                                                na_value=np.nan)
    except TypeError:  # unhashable cells (a tuple holding a list ...)
        error = _container_error(series, name)
        if error is None:
            raise
        raise error from None
    bad = ~np.isin(values, (0.0, 1.0))
    if allow_missing:
        bad &= series.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"Column {name!r} is boolean but has the value {series.iloc[row]!r} at "
            f"{_position(series.index, row)}; expected True/False or 0/1."
        )
    return values.astype(np.float32)
