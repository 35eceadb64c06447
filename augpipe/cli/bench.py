"""``augpipe bench OUT``: which stage — disk, decode, augment, loader, transfer, model — limits
training on this dataset and machine, by how much, and what to change."""

from __future__ import annotations

import sys

from augpipe.errors import bad_param


def _workers(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise bad_param(
            "--workers", "a comma-separated list of integers, e.g. 1,2,4", text
        ) from None
    if not values or any(v < 0 for v in values):
        raise bad_param("--workers", "worker counts >= 0, e.g. 1,2,4", text)
    return tuple(sorted(set(values)))


def default_workers() -> str:
    from augpipe.bench.machine import usable_cores

    cores, w, out = usable_cores(), 1, []
    while w < cores:
        out.append(w)
        w *= 2
    return ",".join(map(str, [*out, cores]))


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="find the stage that limits training (disk, decode, augment, loader, transfer, model)",
        description="Measure each stage alone on a packed dataset, then training end to end, "
        "and name the bottleneck with advice.",
    )
    p.add_argument("out", metavar="OUT", help="packed dataset directory")
    p.add_argument("--model", default="resnet50", help="built-in model (default: resnet50)")
    p.add_argument("--res", type=int, default=224, help="training resolution (default: 224)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument(
        "--workers",
        default=None,
        help="loader worker counts for the scaling curve (default: 1,2,4..cores)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--amp", default="none", choices=("none", "fp16", "bf16"))
    p.add_argument("--channels-last", action="store_true", help="model and data in channels_last")
    p.add_argument("--seconds", type=float, default=2.0, help="time per stage (default: 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pipeline",
        metavar="FILE.json",
        help="the pipeline to measure: a JSON file (pipe.save) or a registered string spec "
        "(default: the trainer's RandomResizedCrop(--res) + flip)",
    )
    p.add_argument("--json", metavar="PATH", help="write every figure and the verdict as JSON")
    p.add_argument("--plot", metavar="PATH.png", help="bar chart of the stage capacities")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    from augpipe.bench.report import text_report, write_json, write_plot
    from augpipe.bench.run import run_bench
    from augpipe.bench.stages import BenchConfig

    cfg = BenchConfig(
        model=args.model,
        res=args.res,
        batch_size=args.batch_size,
        workers=_workers(args.workers or default_workers()),
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        seconds=args.seconds,
        seed=args.seed,
        pipeline=args.pipeline,
    )
    from augpipe.models import MODELS

    if cfg.model not in MODELS:
        raise bad_param("--model", f"one of {sorted(MODELS)}", cfg.model)

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    results = run_bench(args.out, cfg, log)
    print(text_report(results))
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        note = write_plot(results, args.plot)
        print(note or f"wrote {args.plot}")
    return 0
