"""The ``alcore`` command line."""

from __future__ import annotations

import argparse
import itertools
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
    demo.add_argument("--out", default="alcore-demo-out", help="directory for the plot")
    gate = commands.add_parser("gate", help="replay a recorded stream through a StreamGate")
    gate.add_argument("stream", help="Parquet, CSV, NDJSON or Arrow file of probability rows")
    gate.add_argument("--strategy", default="variable_uncertainty",
                      help="fixed, variable_uncertainty, randomized_variable_uncertainty, "
                           "split, random or quantile")
    gate.add_argument("--budget", type=float, default=0.1, help="share of items to label")
    gate.add_argument("--utility", default="least_confidence",
                      help="least_confidence, margin or entropy")
    gate.add_argument("--window", type=_positive_int, default=100, help="budget window")
    gate.add_argument("--seed", type=int, default=0, help="random seed")
    gate.add_argument("--probs", help="list column, one column, or a pattern like 'prob_*' "
                                      "(default: column 'probs', else p0, p1, ...)")
    gate.add_argument("--id", default="id", help="id column copied to the output if present")
    gate.add_argument("--out", required=True, help="decisions file (.parquet, .csv, .ndjson)")
    gate.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    select = commands.add_parser("select", help="choose the next batch from a pool file")
    select.add_argument("pool", help="Parquet, CSV, NDJSON or Arrow file")
    select.add_argument("-k", type=_positive_int, required=True, help="batch size")
    select.add_argument("--score", default="margin",
                        help="least_confidence, margin, ratio or entropy")
    select.add_argument("--density", choices=["knn", "information"], help="density weighting")
    select.add_argument("--beta", type=float, default=1.0, help="density exponent")
    select.add_argument("--diversity", default="auto",
                        help="auto (default: kcenter over 5k margin candidates when the pool "
                             "has embeddings), none, kcenter, badge, typiclust, "
                             "cluster_margin, probcover (--radius) or spread (--min-distance)")
    select.add_argument("--candidates", type=_positive_int,
                        help="keep candidates x k best items before the diversity stage")
    select.add_argument("--radius", type=float, help="ProbCover ball radius")
    select.add_argument("--min-distance", type=float, help="spread's minimum distance")
    select.add_argument("--labeled", help="boolean column marking labeled items")
    select.add_argument("--id", default="id", help="id column (default: id, else row number)")
    select.add_argument("--probs", help="probability list column or pattern like 'prob_*' "
                                        "(default: probs, else p0, p1, ...)")
    select.add_argument("--embeddings", help="embedding list column (default: embedding, emb)")
    select.add_argument("--seed", type=int, default=0, help="random seed")
    select.add_argument("--out", required=True, help="batch file (.parquet, .csv, .json)")
    select.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    select.add_argument("--explain", action="store_true",
                        help="add the score components and print the stage timings")
    simulate = commands.add_parser("simulate", help="learning curves of strategies on data")
    simulate.add_argument("--dataset", default="digits",
                          help="digits, breast_cancer, wine, or a table file")
    simulate.add_argument("--label-column", help="label column of a table file")
    simulate.add_argument("--strategies", default="random,margin,margin+kcenter,"
                          "skactiveml-margin", help="comma-separated strategy names")
    simulate.add_argument("--rounds", type=_positive_int, default=10)
    simulate.add_argument("--batch", type=_positive_int, default=10)
    simulate.add_argument("--seeds", type=_positive_int, default=3)
    simulate.add_argument("--out", default="alcore-simulation", help="output directory")
    return parser


def _simulate(args: argparse.Namespace) -> None:
    from alcore import simulate

    x, y = simulate.load_dataset(args.dataset, args.label_column)
    results = simulate.run(x, y, args.strategies.split(","), rounds=args.rounds,
                           batch=args.batch, seeds=args.seeds)
    files = simulate.write(results, args.out, f"{args.dataset}: {args.seeds} seeds")
    print(simulate.table(results))
    print("wrote " + ", ".join(str(f) for f in files))


def _select(args: argparse.Namespace) -> None:
    import numpy as np
    import polars as pl

    import alcore
    from alcore import io

    pool = io.read_pool(args.pool, id=args.id, probs=args.probs, embeddings=args.embeddings)
    if pool.probs is None:
        raise alcore.InvalidInputError(
            f"{args.pool}: no probabilities (a list column 'probs' or columns p0, p1, ...); "
            f"name them with --probs")
    labeled = None
    if args.labeled is not None:
        table = io.read_table(args.pool)
        if args.labeled not in table.columns:
            raise alcore.InvalidInputError(f"no column {args.labeled!r} for --labeled")
        labeled = table[args.labeled].cast(pl.Boolean).to_numpy()
    params = {}
    if args.diversity == "probcover":
        if args.radius is None:
            raise alcore.InvalidInputError("--diversity probcover needs --radius")
        params["radius"] = args.radius
    if args.diversity == "spread":
        if args.min_distance is None:
            raise alcore.InvalidInputError("--diversity spread needs --min-distance")
        params["min_distance"] = args.min_distance
    if args.diversity in ("kcenter", "badge", "typiclust", "probcover"):
        params["verbose"] = True  # a progress bar on stderr for the long step
    diversity = None if args.diversity == "none" else args.diversity
    chosen = alcore.select(args.k, pool.probs, embeddings=pool.embeddings, labeled=labeled,
                           score=args.score, density=args.density, beta=args.beta,
                           diversity=diversity, candidates=args.candidates,
                           seed=args.seed, **params)
    columns = {"id": pool.ids[chosen.indices], "rank": np.arange(1, len(chosen.indices) + 1),
               "score": chosen.scores, "reason": chosen.reasons}
    if args.explain:
        columns.update({name: values for name, values in chosen.components.items()})
    io.write_table(pl.DataFrame(columns), args.out, overwrite=args.overwrite)
    print(f"{args.pool}: {len(pool.ids)} items; {len(chosen.indices)} selected "
          f"({chosen.reasons[0] if chosen.reasons else 'none'}) -> {args.out}")
    if args.explain:
        print("timings: " + ", ".join(f"{stage} {seconds:.3f}s"
                                      for stage, seconds in chosen.timings.items()))


def _gate(args: argparse.Namespace) -> None:
    import numpy as np
    import polars as pl

    from alcore import io
    from alcore.stream import StreamGate

    table = io.read_table(args.stream)
    probs = io.probability_matrix(table, args.probs)
    gate = StreamGate(args.strategy, args.budget, args.utility, window=args.window,
                      seed=args.seed)
    # Decide in ten slices to report the threshold's trajectory (same decisions as one call).
    bounds = np.linspace(0, len(probs), 11).astype(int)
    decisions, trajectory = [], []
    for start, stop in itertools.pairwise(bounds):
        decisions.append(gate.decide_many(probs[start:stop]))
        trajectory.append(gate.stats.threshold)
    queried = np.concatenate(decisions) if decisions else np.zeros(0, dtype=bool)
    out = pl.DataFrame({"row": np.arange(len(probs)), "query": queried})
    if args.id in table.columns:
        out = out.insert_column(0, table[args.id])
    io.write_table(out, args.out, overwrite=args.overwrite)
    stats = gate.stats
    print(f"{args.stream}: {stats.seen} items, {stats.queried} queried "
          f"({stats.budget_used:.2%}; budget {args.budget:.2%}), strategy {args.strategy}")
    if args.strategy in ("variable_uncertainty", "randomized_variable_uncertainty", "split"):
        print("threshold after each tenth: " + " ".join(f"{t:.3f}" for t in trajectory))
    print(f"decisions written to {args.out}")


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
            demo.tour(n=args.items, classes=args.classes, k=args.k, seed=args.seed,
                      repeats=args.repeats, out_dir=args.out)
        elif args.command == "gate":
            _gate(args)
        elif args.command == "select":
            _select(args)
        elif args.command == "simulate":
            _simulate(args)
    except alcore.InvalidInputError as err:
        print(f"alcore: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
