"""``augpipe demo``: make a small synthetic dataset, pack, inspect, bench and train on it."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="try everything on a small synthetic dataset (pack, inspect, bench, train)",
        description="Generate a small learnable image folder, pack it, inspect it, run a short "
        "bench and a short training of small_cnn, and print the reports. Under 3 minutes on "
        "2 cores with --size small.",
    )
    p.add_argument("--out", metavar="DIR", help="keep everything here (a new or empty "
                   "directory); default: a temporary directory removed at the end")  # fmt: skip
    p.add_argument("--size", choices=("tiny", "small"), default="small",
                   help="tiny: seconds (CI); small: the full demo (default)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="loader/pack workers (default: 2)")
    p.set_defaults(func=run)


def run(args) -> int:
    from augpipe.bench.demo import run_demo
    from augpipe.errors import bad_param

    if args.workers < 1:
        raise bad_param("--workers", "an integer >= 1", args.workers)
    result = run_demo(args.out, size=args.size, workers=args.workers)
    if args.out:
        print(f"files kept in {result['root']} (images/, packed/, run/)")
    return 0
