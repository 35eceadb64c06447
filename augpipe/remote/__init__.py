"""Datasets in object storage (``s3://``, ``gs://``, ``https://``, ``file://``, ... via fsspec):
URL handling, checked downloads, and a node's bounded shard cache.  See docs/remote.md."""
