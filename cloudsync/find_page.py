"""[FindPage][cloudsync.FindPage]: one answer of `_find`, for page-at-a-time queries that
keep the server's bookmark and read its execution statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidResponse

__all__ = ["FindPage"]


@dataclass(frozen=True, slots=True)
class FindPage:
    """One page of a Mango query, from [`Database.query_page()`][cloudsync.Database.query_page].

    Args:
        docs: The page's documents.
        bookmark: Where the next page starts: pass it to `query_page(bookmark=...)` or
            [`query(bookmark=...)`][cloudsync.Database.query], now or later (it is a
            string to keep). `None` when the server sends no bookmarks (pouchdb-server
            4.2.0): page with `skip` there.
        execution_stats: With `execution_stats=True`, the server's statistics for this
            request (`total_docs_examined`, `results_returned`, `execution_time_ms`...);
            `None` when not asked for or when the server sends none (pouchdb-server).
        warning: The server's warning, e.g. that no index matched the query.
    """

    docs: list[dict[str, Any]] = field(default_factory=list)
    bookmark: str | None = None
    execution_stats: dict[str, Any] | None = None
    warning: str | None = None

    @classmethod
    def from_answer(cls, answer: Any) -> FindPage:
        """Read a `_find` answer.

        Args:
            answer: The decoded body.

        Returns:
            The page.

        Raises:
            InvalidResponse: The answer has no list of `docs`.
        """
        docs = answer.get("docs") if isinstance(answer, dict) else None
        if not isinstance(docs, list):
            raise InvalidResponse("_find answered without a list of docs")
        bookmark = answer.get("bookmark")
        return cls(
            docs=docs,
            bookmark=bookmark if isinstance(bookmark, str) else None,
            execution_stats=answer.get("execution_stats"),
            warning=answer.get("warning"),
        )
