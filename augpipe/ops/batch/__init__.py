"""Batch ops (``Compose.batch_ops``), e.g. Mixup: on whole batches, where the batch is built
(host stage, ``augpipe.loader.stages``) or on what the loader yields (device stage)."""
