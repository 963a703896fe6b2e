"""Replication over the CouchDB replication protocol: [replicate()][cloudsync.replicate]
and [Replication][cloudsync.Replication]. See docs/replication.md."""

from .replication import Replication, ReplicationProgress, ReplicationState, replicate

__all__ = ["Replication", "ReplicationProgress", "ReplicationState", "replicate"]
