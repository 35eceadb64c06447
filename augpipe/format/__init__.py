"""The packed-dataset format: writing (``pack``), reading (``ShardDataset``), ``inspect``.

Modules: ``record`` (the 32-byte record header), ``manifest`` (manifest.json and index.npy),
``sources`` (ImageFolder and list files), ``imageio`` (one input image -> RGB uint8),
``stats`` (mean/std/RGB eigen), ``workers`` (parallel decode/encode, results in order),
``writer`` (one deterministic LMDB shard), ``pack``, ``dataset``, ``inspect``.
See docs/format.md. Importing this package imports none of them.
"""
