"""cloudsync: a Python SDK for CouchDB-style document databases and their live change feeds."""

__version__ = "0.1.0.dev0"
