"""Retrieval by code distance: the records most like a query, compared by their codes."""

from ._index import CodeIndex, neighbors_frame

__all__ = ["CodeIndex", "neighbors_frame"]
