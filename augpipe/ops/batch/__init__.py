"""Batch ops: run on whole batches in the main process (``Compose.batch_ops``), e.g. Mixup."""
