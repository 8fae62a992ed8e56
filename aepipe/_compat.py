"""The one place where scikit-learn private helpers are reached.

scikit-learn moves these between releases (``BaseEstimator._validate_data``
became ``sklearn.utils.validation.validate_data`` in 1.6); keeping the imports
here means one file to change when it moves them again.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import validate_data

__all__ = ["HasMethods", "Interval", "StrOptions", "_fit_context", "validate_data"]
