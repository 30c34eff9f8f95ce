"""The ``alcore`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from alcore._version import __version__

    parser = argparse.ArgumentParser(
        prog="alcore", description="alcore: native-accelerated active-learning selection."
    )
    parser.add_argument("--version", action="version", version=f"alcore {__version__}")
    parser.add_argument("--threads", type=_positive_int, help="bound the worker threads")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="seeded tour with timings (pool selection, BALD)")
    demo.add_argument("--items", type=_positive_int, default=1_000_000, help="pool size")
    demo.add_argument("--classes", type=_positive_int, default=10, help="classes per item")
    demo.add_argument("-k", type=_positive_int, default=1000, help="batch size")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--repeats", type=_positive_int, default=5, help="timing repeats")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import alcore

    if args.threads:
        alcore.set_num_threads(args.threads)
    try:
        if args.command == "demo":
            from alcore import demo

            if args.k > args.items:
                parser.error(f"-k {args.k} exceeds --items {args.items}")
            demo.run(n=args.items, classes=args.classes, k=args.k, seed=args.seed,
                     repeats=args.repeats)
    except alcore.InvalidInputError as err:
        print(f"alcore: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
