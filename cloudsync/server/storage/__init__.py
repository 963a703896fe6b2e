"""SQLite storage: the only part of the server that runs SQL.

- `database`: a database file, its connections, reads, counters and feed listeners;
  `Storage`, all databases of a data directory.
- `tx`: writing documents in a transaction (revision trees via `cloudsync.server.revtree`).
- `writes`: the write queue and group commit on the writer thread.
- `ring`: the newest changes in memory, for live feeds.
- `find`: Mango indexes and query plans as SQL.
"""

from __future__ import annotations

from ..errors import RowError
from .database import CHANGES_SQL, Database, Listener, Storage, valid_db_name
from .ring import Row
from .tx import Tx, check_doc_id

__all__ = ["CHANGES_SQL", "Database", "Listener", "Row", "RowError", "Storage", "Tx", "check_doc_id",
           "valid_db_name"]
