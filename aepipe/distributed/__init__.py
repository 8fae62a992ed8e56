"""Beyond one machine: searches and scoring on a Dask cluster.

Needs the ``dask`` extra (``pip install 'aepipe[dask]'``). Importing this
package does not import Dask; the functions do, when called.
"""

from ._scoring import score_dask, score_file_distributed
from ._search import search_on_dask

__all__ = ["score_dask", "score_file_distributed", "search_on_dask"]
