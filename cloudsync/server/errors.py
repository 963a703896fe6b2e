"""The one exception type the server turns into a CouchDB-style JSON error answer."""

from __future__ import annotations

__all__ = ["CouchError", "RowError", "bad_request", "conflict", "not_found"]


class CouchError(Exception):
    """An error answered as `{"error": error, "reason": reason}` with `status`."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "reason": self.reason}


def bad_request(reason: str) -> CouchError:
    return CouchError(400, "bad_request", reason)


def not_found(reason: str = "missing") -> CouchError:
    return CouchError(404, "not_found", reason)


def conflict() -> CouchError:
    return CouchError(409, "conflict", "Document update conflict.")


class RowError(Exception):
    """A per-document failure inside a bulk write (answered in that row, not as a status)."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
