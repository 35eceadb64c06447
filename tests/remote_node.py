"""One rank of the multi-node tests (run by torchrun or directly).

argv: URL CACHE_DIR OUT_DIR GLOBAL_BATCH [STOP_AFTER]. Reads RANK/WORLD_SIZE (torchrun sets
them), runs one epoch of the shard-aware order and writes OUT_DIR/rank<R>.json: the batches of
(index, payload CRC32), and after each batch the loader state (state-<R>.json), so a test can
kill the run at any point and resume from the last state written.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from remote_helpers import BytesPipeline, decode  # noqa: E402

from augpipe import Loader  # noqa: E402


def main() -> None:
    url, cache, out, global_batch = sys.argv[1:5]
    stop_after = int(sys.argv[5]) if len(sys.argv) > 5 else None
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    loader = Loader(url, int(global_batch) // world, BytesPipeline(), output="numpy",
                    workers=int(os.environ.get("TEST_WORKERS", "0")), seed=5, partitions=4,
                    block=6, rank=rank, world_size=world, cache_dir=cache)  # fmt: skip
    batches = []
    for images, _ in loader:
        batches.append(decode(images))
        with open(os.path.join(out, f"state-{rank}.json.tmp"), "w") as f:
            json.dump({"state": loader.state_dict(), "batches": batches}, f)
        os.replace(os.path.join(out, f"state-{rank}.json.tmp"),
                   os.path.join(out, f"state-{rank}.json"))  # fmt: skip
        if stop_after is not None and len(batches) == stop_after:
            print("STOPPED", flush=True)
            sys.stdin.read()  # wait to be killed
    downloads = loader.dataset.cache.downloads
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"batches": batches, "downloads": downloads}, f)
    loader.close()


if __name__ == "__main__":
    main()
