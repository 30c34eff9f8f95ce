"""The ``alcore`` command line: ``select``, ``gate``, ``simulate``, ``demo`` and ``serve``.

Conventions every subcommand follows:

- **Errors** are one line on stderr, ``alcore: error: …``, with exit code 2 for bad input
  (1 for a missing optional dependency or a failed write); never a traceback. The
  library's :class:`alcore.InvalidInputError` messages name Python arguments (``pass
  logits=…``, ``normalize=True``, ``a larger atol=``); the command line rewrites them into
  its flags (``--logits``, ``--normalize``, ``--atol``) with :func:`in_flags`, so advice
  names only what the command accepts.
- **Output** is checked before any work: ``--out`` must have a writable extension, its
  folder must exist, and an existing file (or, for ``simulate``, folder) is replaced only
  with ``--overwrite``. Files are written atomically.
- **Ids** are taken as written (CSV/NDJSON ids are read as text: ``002241`` stays
  ``002241``). ``--id NAME`` must exist. Without ``--id`` the column ``id`` is used when
  present; otherwise the output's ids are the 0-based row numbers and a note says so.
- ``-k`` is an integer count of items (``-k 5000``; ``5k`` is refused, not guessed).
- ``--threads N`` is accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Library keyword -> command-line flag, for rewriting InvalidInputError messages.
_FLAGS = {
    "logits": "--logits", "normalize": "--normalize", "atol": "--atol",
    "embeddings": "--embeddings", "radius": "--radius", "min_distance": "--min-distance",
    "candidates": "--candidates", "beta": "--beta", "seed": "--seed", "score": "--score",
    "density": "--density", "diversity": "--diversity", "labeled": "--labeled",
    "id": "--id", "probs": "--probs", "k": "-k", "overwrite": "--overwrite",
    "budget": "--budget", "strategy": "--strategy", "utility": "--utility",
    "window": "--window", "hard_cap": "--hard-cap", "label_column": "--label-column",
    "strategies": "--strategies", "dataset": "--dataset", "rounds": "--rounds",
    "batch": "--batch", "classes": "--classes", "minority_class": "--minority-class",
    "minority_share": "--minority-share", "variant": "--variant",
    "noise": "--noise", "annotators": "--annotators", "control_share": "--control-share",
    "from_name": "--from-name", "port": "--port", "host": "--host",
}
# Whole phrases whose advice is Python code, reworded for a file on the command line.
_PHRASES = [
    ("pass id=None to use row numbers", "leave out --id to use row numbers"),
    ("replace NaN/inf (e.g. numpy.nan_to_num) or drop those rows",
     "fill in or drop that row in the file"),
    ("replace NaN/inf or drop those items", "fill in or drop that row in the file"),
    ("for a binary model with one output column p pass numpy.column_stack([1 - p, p])",
     "a binary model's single probability column p is read as [1 - p, p]: name it with "
     "--probs"),
    ("(or logits with logits=True)", "(or logits with --logits)"),
]
_KEYWORD = re.compile(
    r"(?<![\w.-])(" + "|".join(sorted(_FLAGS, key=len, reverse=True)) +
    r")=(True\b|'[^']*'|\"[^\"]*\"|[^\s,;)'\"]*)")
# Options (not data arrays) that open a message as its subject: "atol must be in [0, 1)".
_SUBJECT = re.compile(
    r"(?<![\w.-])(atol|beta|radius|min_distance|candidates|seed|score|density|diversity|k|"
    r"budget|strategy|utility|window|minority_share|variant|noise|annotators|control_share)"
    r"(?= must\b)")
SCORES = ("least_confidence", "margin", "ratio", "entropy")
DIVERSITIES = ("auto", "none", "kcenter", "badge", "typiclust", "cluster_margin",
               "probcover", "spread")
GATE_STRATEGIES = ("fixed", "variable_uncertainty", "randomized_variable_uncertainty",
                   "split", "random", "quantile")
GATE_UTILITIES = ("least_confidence", "margin", "entropy")


def in_flags(message: str) -> str:
    """A library error message with its Python advice rewritten as command-line flags:
    ``logits=``/``logits=True`` -> ``--logits``, ``atol=0.001`` -> ``--atol 0.001``,
    ``min_distance=`` -> ``--min-distance``, an option as a sentence's subject (``atol must
    be …``) -> its flag, and known phrases (``numpy.nan_to_num``, ``id=None``) reworded for
    a file."""
    for python, flags in _PHRASES:
        message = message.replace(python, flags)

    def flag(match: re.Match) -> str:
        name, value = match[1], match[2].strip("'\"")
        if value in ("", "True"):
            return _FLAGS[name]
        if value == "None":
            return "--diversity none" if name == "diversity" else f"no {_FLAGS[name]}"
        if any(ch in value for ch in "*?["):  # a pattern: quoted, or the shell expands it
            return f"{_FLAGS[name]} '{value}'"
        return f"{_FLAGS[name]} {value}"

    message = _KEYWORD.sub(flag, message)
    return _SUBJECT.sub(lambda match: _FLAGS[match[1]], message)


def _is_function_spec(text: str) -> bool:
    return re.fullmatch(r".+\.py:[A-Za-z_]\w*", text) is not None


def _name_or_function(names: list[str]) -> Callable[[str], str]:
    """An argparse type: one of ``names``, or FILE.py:FUNCTION naming a custom utility."""

    def parse(text: str) -> str:
        if text in names or _is_function_spec(text):
            return text
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(names)}, or FILE.py:FUNCTION "
            f"for your own utility of one row)")

    return parse


def _load_utility(spec: str, flag: str = "--score") -> Any:
    """The custom utility named FILE.py:FUNCTION (the file is run as a module)."""
    import importlib.util

    import alcore

    file, _, name = spec.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise alcore.InvalidInputError(f"{flag} {spec}: no file {file!r}")
    module_spec = importlib.util.spec_from_file_location(f"alcore_cli_score_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # Numba's cache finds the function's module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report what it raised, do not crash
        raise alcore.InvalidInputError(
            f"{flag} {spec}: running {file} raised {type(err).__name__}: {err}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise alcore.InvalidInputError(f"{flag} {spec}: {file} defines no {name!r}")
    return alcore.utility(fn)


def _extra_args(pairs: list[str] | None) -> dict[str, str]:
    """--extra PARAM=COLUMN pairs as a dict."""
    import alcore

    mapping = {}
    for pair in pairs or ():
        param, sep, column = pair.partition("=")
        if not sep or not param or not column:
            raise alcore.InvalidInputError(
                f"--extra expects PARAM=COLUMN (e.g. --extra cost=cost_usd), got {pair!r}")
        if param in mapping and mapping[param] != column:
            # Silently keeping the last would score by a column the user did not mean.
            raise alcore.InvalidInputError(
                f"--extra {param}= is given twice ({mapping[param]!r} and {column!r}); map "
                f"each parameter to one column")
        mapping[param] = column
    return mapping


def _count(text: str) -> int:
    """-k and other counts: a whole positive number as digits, nothing guessed."""
    if not re.fullmatch(r"\s*\+?\d+\s*", text):
        hint = ""
        if re.fullmatch(r"\s*\d+(\.\d+)?\s*[kKmM]\s*", text):
            hint = " (write the number out: 5k is 5000)"
        raise argparse.ArgumentTypeError(
            f"expected a whole number of items, e.g. 1000, got {text!r}{hint}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common() -> argparse.ArgumentParser:
    """Options every subcommand accepts (default SUPPRESS, so a --threads given before the
    subcommand is not reset by the subcommand's default)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=_count, default=argparse.SUPPRESS,
                        help="bound alcore's worker threads (default: all cores)")
    return common


def _outputs(parser: argparse.ArgumentParser, *, single: bool = False) -> None:
    """--probs/--logits/--normalize/--atol, shared by select and gate."""
    parser.add_argument(
        "--probs", help="probabilities: a list column, one column per class by a pattern "
                        "such as 'prob_*', or a single column p of a binary model (read as "
                        "[1-p, p]) (default: column 'probs', else p0, p1, ...)")
    parser.add_argument("--logits", action="store_true",
                        help="the --probs columns hold logits (raw model outputs); the "
                             "built-in scores apply softmax, a FILE.py:FUNCTION utility gets "
                             "the raw logits; a single logit column z is read as [0, z]")
    parser.add_argument("--normalize", action="store_true",
                        help="divide each non-negative row by its sum (counts, weights, or "
                             "rounded probabilities)")
    parser.add_argument("--atol", type=float, default=1e-3,
                        help="allowed |row sum - 1| (default 0.001; probabilities rounded "
                             "to 3 decimals can be off by 0.0005 x classes: --atol 0.01, or "
                             "--normalize)")


def build_parser() -> argparse.ArgumentParser:
    from alcore._version import __version__

    common = _common()
    parser = argparse.ArgumentParser(
        prog="alcore", description="alcore: native-accelerated active-learning selection.",
        parents=[common])
    parser.add_argument("--version", action="version", version=f"alcore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", parents=[common],
                               help="seeded tour with timings: pool selection, a gated "
                                    "stream, a simulation")
    demo.add_argument("--items", type=_count, default=1_000_000, help="pool size")
    demo.add_argument("--classes", type=_count, default=10, help="classes per item")
    demo.add_argument("-k", type=_count, default=1000,
                      help="batch size: how many items to select (an integer)")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--repeats", type=_count, default=5, help="timing repeats")
    demo.add_argument("--seeds", type=_count, default=20,
                      help="simulation seeds (default 20, enough for a 95%% confidence "
                           "interval of the AULC differences)")
    demo.add_argument("--out", default="alcore-demo-out",
                      help="folder for the simulation's curves and plot (default "
                           "alcore-demo-out; its files are replaced)")

    gate = commands.add_parser("gate", parents=[common],
                               help="replay a recorded stream through a StreamGate")
    gate.add_argument("stream", help="Parquet, CSV, NDJSON or Arrow file of probability "
                                     "rows (.csv.gz and .ndjson.gz too)")
    gate.add_argument("--strategy", default="variable_uncertainty", choices=GATE_STRATEGIES,
                      help="default variable_uncertainty")
    gate.add_argument("--budget", type=float, default=0.1,
                      help="share of items to label, in (0, 1] (default 0.1)")
    gate.add_argument("--utility", default="least_confidence",
                      type=_name_or_function(GATE_UTILITIES), metavar="UTILITY",
                      help=f"{', '.join(GATE_UTILITIES)} (default least_confidence), or "
                           f"FILE.py:FUNCTION: your own utility of one row, def f(p)")
    gate.add_argument("--utilities", metavar="COLUMN",
                      help="gate the utilities in this numeric column (computed by you: "
                           "BALD, a regressor's variance, ...) instead of probability rows")
    gate.add_argument("--classes", type=_count,
                      help="class count (the fixed strategy needs it with --utilities)")
    gate.add_argument("--window", type=_count,
                      help="budget window in items (default: follows the budget)")
    gate.add_argument("--seed", type=int, default=0, help="random seed")
    gate.add_argument("--hard-cap", action="store_true",
                      help="never let any prefix of the stream spend more than budget x n + 1")
    _outputs(gate)
    gate.add_argument("--id", help="id column copied to the output (default: 'id' if "
                                   "present); ids are kept as written")
    gate.add_argument("--out", required=True, help="decisions file (.parquet, .csv, .ndjson, "
                                                   ".json)")
    gate.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    select = commands.add_parser(
        "select", parents=[common], help="choose the next batch from a pool file",
        description="Choose the next batch from a pool file. The output has one row per "
                    "chosen item: id (as written in the pool), pick (1 = picked first; the "
                    "diversity stage's order), score (the combined score), score_rank (the "
                    "item's rank by score among the unlabeled items, 1 = best) and reason "
                    "(why this item, with its own numbers).")
    select.add_argument("pool", help="Parquet, CSV, NDJSON or Arrow file (.csv.gz and "
                                     ".ndjson.gz too)")
    select.add_argument("-k", type=_count, required=True, metavar="N",
                        help="batch size: how many items to select (an integer, e.g. 1000)")
    select.add_argument("--score", default="margin", type=_name_or_function(SCORES),
                        metavar="SCORE",
                        help=f"{', '.join(SCORES)} (default margin), or FILE.py:FUNCTION: "
                             f"your own utility of one row, compiled by Numba (see "
                             f"alcore.utility); its extra parameters read the columns of "
                             f"the same names")
    select.add_argument("--extra", action="append", metavar="PARAM=COLUMN",
                        help="fill a custom utility's parameter from another column "
                             "(repeatable)")
    _outputs(select)
    select.add_argument("--density", choices=["knn", "information"],
                        help="weight the score by density (needs embeddings)")
    select.add_argument("--beta", type=float, default=1.0, help="density exponent")
    select.add_argument("--diversity", default="auto", choices=DIVERSITIES,
                        help="auto (default): kcenter over the 5 x k best candidates by "
                             "score when the pool has embeddings, else the top k; none: the "
                             "top k; probcover needs --radius, spread --min-distance")
    select.add_argument("--candidates", type=_count, metavar="M",
                        help="keep the best (candidates x k) items by score before the "
                             "diversity stage")
    select.add_argument("--radius", type=float, help="ProbCover ball radius")
    select.add_argument("--min-distance", type=float, help="spread's minimum distance")
    select.add_argument("--labeled", help="boolean column (true/false or 0/1) marking "
                                          "labeled items")
    select.add_argument("--id", help="id column (default: 'id' if present, else row "
                                     "numbers with a note); ids are kept as written")
    select.add_argument("--embeddings",
                        help="embeddings: a list column, or numbered columns by a pattern "
                             "such as 'e*' (default: column 'embedding', else 'emb')")
    select.add_argument("--seed", type=int, default=0, help="random seed")
    select.add_argument("--out", required=True, help="batch file (.parquet, .csv, .ndjson, "
                                                     ".json)")
    select.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    select.add_argument("--explain", action="store_true",
                        help="add the score components (e.g. uncertainty, density) and print "
                             "the stage timings")

    simulate = commands.add_parser("simulate", parents=[common],
                                   help="learning curves of strategies on labeled data")
    simulate.add_argument("--dataset", default="digits",
                          help="digits, breast_cancer, wine, or a table file with a label "
                               "column")
    simulate.add_argument("--label-column", help="label column of a table file")
    simulate.add_argument("--strategies",
                          help="comma-separated strategy names (default random,margin,"
                               "margin+kcenter; skactiveml-margin and skactiveml-entropy "
                               "need scikit-activeml)")
    simulate.add_argument("--rounds", type=_count, default=10)
    simulate.add_argument("--batch", type=_count, default=10)
    simulate.add_argument("--seeds", type=_count,
                          help="seeds of the learning-curves and minority experiments "
                               "(default 10); --hybrid runs one loop, seeded by --seed")
    simulate.add_argument("--out", default="alcore-simulation", help="output folder")
    simulate.add_argument("--overwrite", action="store_true",
                          help="replace the files of an existing --out folder")
    simulate.add_argument("--experiment", default="learning-curves",
                          choices=("learning-curves", "minority"),
                          help="learning-curves (default): the --strategies' accuracy "
                               "curves; minority: one class cut to --minority-share of the "
                               "pool, margin alone against margin plus validated minority "
                               "or boundary queries mapped to real items, the rare class's "
                               "recall per round (minority_recall.json, .png)")
    simulate.add_argument("--minority-class",
                          help="minority experiment: the class to cut (default: the least "
                               "frequent; digits: 8)")
    simulate.add_argument("--minority-share", type=float,
                          help="minority experiment: its share of the pool (default 0.02)")
    simulate.add_argument("--variant",
                          help="minority experiment: smote (default) or borderline")
    simulate.add_argument("--hybrid", action="store_true",
                          help="the hybrid workflow loop instead: pool, stream and synthesis "
                               "sources under one budget, simulated annotators "
                               "(--annotators, --noise), an expert for disagreements, a "
                               "control arm; labels per source, agreement, control-arm and "
                               "test accuracy per round (hybrid.json, hybrid.png)")
    simulate.add_argument("--annotators", type=_count,
                          help="hybrid: simulated annotators per item (default 3)")
    simulate.add_argument("--noise", type=float,
                          help="hybrid: each annotator's chance of giving a wrong label, in "
                               "[0, 1) (default 0.1)")
    simulate.add_argument("--budget", type=_count,
                          help="hybrid: labels to spend over all rounds (default rounds x "
                               "batch)")
    simulate.add_argument("--control-share", type=float,
                          help="hybrid: share of each round's labels drawn at random (the "
                               "control arm; default 0.1)")
    simulate.add_argument("--seed", type=int, help="hybrid: random seed (default 0)")
    _workflow_parsers(commands, common)

    serve = commands.add_parser(
        "serve", parents=[common], help="serve a ledger to Label Studio as its ML backend",
        description="Serve a workflow ledger over the Label Studio ML backend protocol: "
                    "/predict answers with the ledger's predictions for tasks exported by "
                    "alcore, /webhook records Label Studio's annotations as labels. In "
                    "Label Studio add the printed URL as the project's model (Settings > "
                    "Model). Ctrl-C stops it.")
    serve.add_argument("ledger", help="ledger file (from alcore workflow init)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only). "
                            "Note: /webhook writes labels into the ledger and there is no "
                            "authentication unless ALCORE_SERVE_AUTH=user:password is set, "
                            "so bind 0.0.0.0 only on a trusted network")
    serve.add_argument("--port", type=_port, default=9090,
                       help="port (default 9090; 0: any free port, printed)")
    return parser


def _port(text: str) -> int:
    """--port: a whole number in [0, 65535]."""
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in [0, 65535], got {text!r}")
    return int(text)


def _workflow_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """``alcore workflow init|next|import|status``: a labelling loop kept in a ledger file
    (the work is done in :mod:`alcore.workflow._cli`)."""
    workflow = commands.add_parser(
        "workflow", parents=[common], help="a labelling loop over a pool, kept in a ledger",
        description="A labelling loop kept in a ledger file (SQLite): init binds it to a pool "
                    "file, next selects and queues a batch as Label Studio tasks, import "
                    "reads Label Studio's JSON export back, status reports budget, queue, "
                    "labels and the control arm.")
    steps = workflow.add_subparsers(dest="step", metavar="STEP")
    init = steps.add_parser("init", parents=[common],
                            help="create a ledger bound to a pool file")
    init.add_argument("ledger", help="ledger file to create (e.g. alcore.db)")
    init.add_argument("--pool", required=True,
                      help="Parquet, CSV, NDJSON or Arrow pool file; its rows and ids are "
                           "fingerprinted (later steps refuse a pool with other rows or "
                           "ids; refreshed probabilities are expected)")
    _outputs(init)
    init.add_argument("--id", help="id column (default: 'id' if present, else row numbers "
                                   "with a note); ids are kept as written")
    init.add_argument("--embeddings",
                      help="embeddings: a list column, or numbered columns by a pattern such "
                           "as 'e*' (default: column 'embedding', else 'emb')")
    init.add_argument("--labeled", help="boolean column (true/false or 0/1) marking items "
                                        "labeled before the loop")
    init.add_argument("--classes", metavar="NAME,NAME,...",
                      help="the label of each probability column, as annotators choose it "
                           "(default 0, 1, ..., C-1)")
    init.add_argument("--data", metavar="COLUMN",
                      help="column shown to annotators (text, or an image URL) in the tasks")
    init.add_argument("--data-key", default="text",
                      help="the task's data key for --data, the Label Studio config's "
                           "value=$KEY (default text)")
    init.add_argument("--budget", type=_count, help="labels to spend in total (default: no "
                                                    "limit)")
    init.add_argument("--control-share", type=float, default=0.1,
                      help="share of each batch drawn uniformly at random and recorded as "
                           "the control arm, in [0, 1) (default 0.1)")
    init.add_argument("--score", default="margin", choices=SCORES, help="default margin")
    init.add_argument("--diversity", default="auto", choices=("auto", "none", "kcenter"),
                      help="auto (default): kcenter over the best candidates when the pool "
                           "has embeddings, else the top k")
    init.add_argument("--audit", action="store_true",
                      help="sketch the pool's embeddings once (alcore.monitor.PoolSketch, "
                           "saved beside the ledger as LEDGER.sketch.npz) and audit every "
                           "batch against it; status shows the last audit")
    init.add_argument("--seed", type=int, default=0, help="random seed")
    init.add_argument("--overwrite", action="store_true", help="replace an existing ledger")

    step_next = steps.add_parser("next", parents=[common],
                                 help="select and queue a batch, written as Label Studio "
                                      "tasks")
    step_next.add_argument("ledger", help="ledger file made by alcore workflow init")
    step_next.add_argument("-k", type=_count, metavar="N",
                           help="batch size: how many items to select and queue (an "
                                "integer; capped by the budget left)")
    step_next.add_argument("--queued", action="store_true",
                           help="write the items already queued (e.g. routed to the "
                                "expert, or a batch whose tasks file was lost) instead of "
                                "selecting")
    step_next.add_argument("--out", default="tasks.json",
                           help="Label Studio tasks file, .json (default tasks.json)")
    step_next.add_argument("--overwrite", action="store_true",
                           help="replace an existing --out")
    step_next.add_argument("--from-name", default="label",
                           help="the Label Studio config's Choices name (default label)")
    step_next.add_argument("--to-name", default=None,
                           help="the Label Studio config's object name (default: the "
                                "ledger's --data-key)")

    step_import = steps.add_parser("import", parents=[common],
                                   help="read a Label Studio JSON export into the ledger")
    step_import.add_argument("ledger", help="ledger file made by alcore workflow init")
    step_import.add_argument("export", help="Label Studio JSON export (Export -> JSON)")
    step_import.add_argument("--from-name",
                             help="the Label Studio config's Choices name holding the class "
                                  "(default: the one Choices tag the annotations use)")
    step_import.add_argument("--expert-below", type=float, default=1.0,
                             help="route to the expert items whose annotators agree on "
                                  "less than this share of pairs, in (0, 1] (default 1: "
                                  "any disagreement), and items flagged ambiguous")

    status = steps.add_parser("status", parents=[common],
                              help="budget, queue, labels per source, control-arm accuracy, "
                                   "last audit")
    status.add_argument("ledger", help="ledger file made by alcore workflow init")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _note(text: str) -> None:
    print(f"alcore: note: {text}", file=sys.stderr)


def _id_column(requested: str | None, columns: list[str]) -> str | None:
    """The id column: ``--id`` as given (it must exist; the reader checks), else ``id`` when
    present, else None (row numbers; the caller notes it once the batch is written, so a
    rejected input gets its error line alone)."""
    if requested is not None:
        return requested
    return "id" if "id" in columns else None


def _simulate(args: argparse.Namespace) -> None:
    from alcore import simulate

    hybrid_flags = ["--annotators", "--noise", "--budget", "--control-share", "--seed"]
    if args.hybrid:
        given = [flag for flag in ("--strategies", "--minority-class", "--minority-share",
                                   "--variant", "--seeds")
                 if getattr(args, flag[2:].replace("-", "_")) is not None]
        if args.experiment != "learning-curves":
            given.insert(0, "--experiment")
        if given:
            import alcore

            raise alcore.InvalidInputError(
                f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to "
                f"--hybrid; leave {'it' if len(given) == 1 else 'them'} out")
        _simulate_hybrid(args)
        return
    given = [flag for flag in hybrid_flags if getattr(args, flag[2:].replace("-", "_")) is not None]
    if given:
        import alcore

        raise alcore.InvalidInputError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --hybrid "
            f"only; add --hybrid or leave {'it' if len(given) == 1 else 'them'} out")
    if args.seeds is None:
        args.seeds = 10
    # Each experiment's own flags are refused by the other, not silently ignored.
    foreign = (["--minority-class", "--minority-share", "--variant"]
               if args.experiment == "learning-curves" else ["--strategies"])
    given = [flag for flag in foreign
             if getattr(args, flag[2:].replace("-", "_")) is not None]
    if given:
        import alcore

        raise alcore.InvalidInputError(
            f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to "
            f"--experiment {args.experiment}; leave {'it' if len(given) == 1 else 'them'} out")
    if args.experiment == "minority":
        _simulate_minority(args)
        return
    listed = "random,margin,margin+kcenter" if args.strategies is None else args.strategies
    strategies = [s.strip() for s in listed.split(",") if s.strip()]
    simulate.check_strategies(strategies)
    out = simulate.check_out(args.out, overwrite=args.overwrite)
    x, y = simulate.load_dataset(args.dataset, args.label_column)
    results = simulate.run(x, y, strategies, rounds=args.rounds, batch=args.batch,
                           seeds=args.seeds)
    files = simulate.write(results, out, f"{Path(args.dataset).name}: {args.seeds} seeds")
    print(simulate.table(results))
    print("wrote " + ", ".join(str(f) for f in files))


def _simulate_hybrid(args: argparse.Namespace) -> None:
    from alcore import simulate, simulate_hybrid

    options = {name: getattr(args, name) for name in
               ("annotators", "noise", "budget", "control_share", "seed")
               if getattr(args, name) is not None}
    config = simulate_hybrid.check(rounds=args.rounds, batch=args.batch, **options)
    out = simulate.check_out(args.out, overwrite=args.overwrite, files=simulate_hybrid.FILES)
    x, y = simulate.load_dataset(args.dataset, args.label_column)
    results = simulate_hybrid.run(x, y, **config)
    files = simulate_hybrid.write(results, out, f"{Path(args.dataset).name}: hybrid loop")
    print(simulate_hybrid.table(results))
    print("wrote " + ", ".join(str(f) for f in files))


def _simulate_minority(args: argparse.Namespace) -> None:
    from alcore import simulate, simulate_synthesis

    share = simulate_synthesis.check_share(
        0.02 if args.minority_share is None else args.minority_share)
    variant = simulate_synthesis.check_variant(args.variant or "smote")
    out = simulate.check_out(args.out, overwrite=args.overwrite, files=simulate_synthesis.FILES)
    x, y = simulate.load_dataset(args.dataset, args.label_column)
    results = simulate_synthesis.run(
        x, y, minority_class=args.minority_class, minority_share=share, variant=variant,
        rounds=args.rounds, batch=args.batch, seeds=args.seeds)
    files = simulate_synthesis.write(results, out,
                                     f"{Path(args.dataset).name}: {args.seeds} seeds")
    print(simulate_synthesis.table(results))
    print("wrote " + ", ".join(str(f) for f in files))


def _select(args: argparse.Namespace) -> None:
    import numpy as np
    import polars as pl

    import alcore
    from alcore import io

    io.check_writable(args.out, overwrite=args.overwrite)
    if args.radius is not None and args.diversity != "probcover":
        raise alcore.InvalidInputError("--radius applies to --diversity probcover only")
    if args.min_distance is not None and args.diversity != "spread":
        raise alcore.InvalidInputError("--min-distance applies to --diversity spread only")
    if args.diversity == "probcover" and args.radius is None:
        raise alcore.InvalidInputError("--diversity probcover needs --radius")
    if args.diversity == "spread" and args.min_distance is None:
        raise alcore.InvalidInputError("--diversity spread needs --min-distance")
    source = Path(args.pool).name
    table = io.read_table(args.pool, text_columns=[args.id or "id"])
    id_column = _id_column(args.id, table.columns)
    pool = io.pool_from_table(table, source, id=id_column, probs=args.probs,
                              embeddings=args.embeddings, labeled=args.labeled,
                              logits=args.logits)
    if id_column is not None:
        _refuse_duplicate_ids(table[id_column], id_column, source)
    score: Any = args.score
    extra = None
    if args.score not in SCORES:
        score = _load_utility(args.score)
        mapping = _extra_args(args.extra)
        unknown = sorted(set(mapping) - set(score.extra))
        if unknown:
            raise alcore.InvalidInputError(
                f"--extra names {', '.join(unknown)}, which {score.name!r} does not take "
                f"(its extra parameters: {', '.join(score.extra) or 'none'})")
        extra = {}
        for param in score.extra:
            column = mapping.get(param, param)
            if column not in table.columns:
                raise alcore.InvalidInputError(
                    f"{source}: no column {column!r} for {score.name!r}'s parameter {param}; "
                    f"map it with --extra {param}=COLUMN")
            extra[param] = table[column].to_numpy()
        extra = extra or None
    elif args.extra:
        raise alcore.InvalidInputError("--extra applies to a custom --score FILE.py:FUNCTION")
    if pool.probs is None:
        raise alcore.InvalidInputError(
            f"{source}: no probabilities (a list column 'probs' or columns p0, p1, ...); "
            f"name them with --probs")
    del table
    needs_embeddings = args.density is not None or args.diversity not in ("auto", "none")
    if needs_embeddings and pool.embeddings is None:
        what = (f"--density {args.density}" if args.density is not None
                else f"--diversity {args.diversity}")
        raise alcore.InvalidInputError(
            f"{what} needs embeddings: {source} has no column 'embedding' or 'emb'; name a "
            f"list column or a pattern such as 'e*' with --embeddings")
    params: dict[str, Any] = {}
    if args.radius is not None:
        params["radius"] = args.radius
    if args.min_distance is not None:
        params["min_distance"] = args.min_distance
    long_step = args.diversity in ("kcenter", "badge", "typiclust", "probcover") or (
        args.diversity == "auto" and pool.embeddings is not None)
    if long_step:
        params["verbose"] = True  # a progress bar on a terminal, one line in a log
    chosen = alcore.select(pool.probs, args.k, logits=args.logits, embeddings=pool.embeddings,
                           labeled=pool.labeled, score=score, extra=extra,
                           normalize=args.normalize,
                           atol=args.atol, density=args.density, beta=args.beta,
                           diversity=None if args.diversity == "none" else args.diversity,
                           candidates=args.candidates, seed=args.seed, **params)
    picks = np.asarray(chosen.indices)
    components = dict(chosen.components)
    columns: dict[str, Any] = {
        "id": pool.ids[picks], "pick": np.arange(1, len(picks) + 1, dtype=np.int64),
        "score": chosen.scores, "score_rank": components.pop("rank"),
        "reason": [_reason_with_ids(text, pool.ids) for text in chosen.reasons]}
    if args.explain:
        for name, values in components.items():
            values = np.asarray(values)
            if name == "nearest":  # a row number: write the nearest covered item's id
                columns["nearest_id"] = pl.Series(
                    [pool.ids[j] if j >= 0 else None for j in values.tolist()])
            elif not np.array_equal(values, chosen.scores):
                # The uncertainty equals the combined score when no density weights it:
                # write each number once.
                columns[name] = values
    io.write_table(pl.DataFrame(columns), args.out, overwrite=args.overwrite)
    n_labeled = 0 if pool.labeled is None else int(pool.labeled.sum())
    print(f"{source}: {len(pool.ids)} items ({n_labeled} labeled); {len(picks)} selected "
          f"({_describe(chosen.config, args.k, len(pool.ids) - n_labeled)}) -> {args.out}")
    if id_column is None:
        _note(f"{source} has no 'id' column; the output's ids are row numbers (0-based). "
              f"Name an id column with --id")
    if getattr(chosen, "shortfall", None):
        _note(f"fewer than -k {args.k} items: {in_flags(chosen.shortfall)}")
    if args.explain:
        print("timings: " + ", ".join(f"{stage} {seconds:.3f}s"
                                      for stage, seconds in chosen.timings.items()))


def _refuse_duplicate_ids(ids: Any, column: str, source: str) -> None:
    """Ids must name one item each: a batch listing id ``a`` twice, or an empty id, cannot
    be traced back to the rows the annotators should label."""
    import alcore

    nulls = ids.is_null()
    if nulls.any():
        raise alcore.InvalidInputError(
            f"{source}: the id column {column!r} is empty in row {int(nulls.arg_true()[0])} "
            f"(0-based; rows without an id: {int(nulls.sum())}); each item needs its own id: "
            f"fill them in, name another column with --id, or drop the id column to use row "
            f"numbers")
    repeated = ids.is_duplicated()
    if repeated.any():
        rows = repeated.arg_true()
        value = ids[int(rows[0])]
        where = [int(r) for r in rows.filter(ids.filter(repeated) == value).head(3)]
        raise alcore.InvalidInputError(
            f"{source}: the id column {column!r} holds {value!r} more than once (rows "
            f"{', '.join(map(str, where))}, 0-based; {int(repeated.sum())} rows share an id); "
            f"each item needs its own id: fix the ids, name another column with --id, or "
            f"drop the id column to use row numbers")


def _reason_with_ids(reason: str, ids: Any) -> str:
    """A Selection reason for the output file: the nearest covered item named by its id (as
    the file's id column does, not by row number), options named as flags."""
    return in_flags(re.sub(r"(nearest covered item )(\d+)", lambda m: f"{m[1]}{ids[int(m[2])]}",
                            reason))


def _describe(config: dict[str, Any], k: int, pickable: int) -> str:
    """The selection's method in words, from Selection.config; a candidate set that holds
    every pickable item is called the pool (``the 5 x k best`` of 200 items at k = 150
    would claim a narrowing that did not happen)."""
    text = config.get("score", "margin")
    if config.get("density"):
        text += f" x {config['density']} density^{config.get('beta', 1.0):g}"
    diversity = config.get("diversity")
    if diversity in (None, "none"):
        return f"top k by {text}"
    candidates = config.get("candidates")
    narrowed = candidates and candidates * k < pickable
    over = f"the {candidates} x k best by {text}" if narrowed else f"the pool ({text})"
    return f"{diversity} over {over}"


def _gate_rows(probs: Any, args: argparse.Namespace) -> Any:
    """The rows the gate decides on: --logits as they are (the gate takes them with
    logits=True), rows divided by their sums with --normalize."""
    import numpy as np

    import alcore

    if not np.isfinite(probs).all():
        row, col = np.argwhere(~np.isfinite(probs))[0]
        raise alcore.InvalidInputError(
            f"probabilities must be finite: row {row}, column {col} is {probs[row, col]}; fill "
            f"in or drop that row in the file")
    if args.normalize and not args.logits:
        if (probs < 0).any():
            row, col = np.argwhere(probs < 0)[0]
            raise alcore.InvalidInputError(
                f"--normalize needs non-negative values: row {row}, column {col} is "
                f"{probs[row, col]:.6g}; pass --logits if these are raw model outputs")
        sums = probs.sum(axis=1, keepdims=True)
        if (sums == 0).any():
            row = int(np.flatnonzero(sums[:, 0] == 0)[0])
            raise alcore.InvalidInputError(
                f"--normalize: row {row} sums to 0 and cannot be renormalised; drop it")
        return probs / sums
    return probs


def _gate_utilities_column(table: Any, args: argparse.Namespace, source: str) -> Any:
    """The --utilities column as float64 (N,), refusing the row options it replaces."""
    import numpy as np

    import alcore

    given = [flag for flag, on in (("--probs", args.probs is not None),
                                   ("--logits", args.logits), ("--normalize", args.normalize),
                                   ("--utility", args.utility != "least_confidence")) if on]
    if given:
        raise alcore.InvalidInputError(
            f"--utilities {args.utilities} gates the column's values as they are; leave out "
            f"{', '.join(given)} (they describe probability rows)")
    if args.utilities not in table.columns:
        raise alcore.InvalidInputError(
            f"{source}: no column {args.utilities!r} for --utilities; columns are "
            f"{', '.join(table.columns[:20])}")
    column = table[args.utilities]
    if not column.dtype.is_numeric():
        raise alcore.InvalidInputError(
            f"--utilities {args.utilities}: the column holds {column.dtype}, not numbers")
    if column.null_count():
        row = int(np.flatnonzero(column.is_null().to_numpy())[0])
        raise alcore.InvalidInputError(
            f"--utilities {args.utilities}: row {row} is empty; fill in or drop that row")
    return column.cast(float).to_numpy()


def _gate(args: argparse.Namespace) -> None:
    import numpy as np
    import polars as pl

    from alcore import io
    from alcore.stream import StreamGate

    io.check_writable(args.out, overwrite=args.overwrite)
    source = Path(args.stream).name
    table = io.read_table(args.stream, text_columns=[args.id or "id"])
    if args.id is not None and args.id not in table.columns:
        import alcore

        raise alcore.InvalidInputError(
            f"{source}: no id column {args.id!r}; columns are {', '.join(table.columns[:20])};"
            f" leave out --id to write row numbers only")
    id_column = args.id or ("id" if "id" in table.columns else None)
    if args.utilities is not None:
        items = _gate_utilities_column(table, args, source)
        classes = args.classes
    else:
        items = _gate_rows(io.probability_matrix(table, args.probs, logits=args.logits), args)
        classes = items.shape[1]
    utility = (_load_utility(args.utility, "--utility") if _is_function_spec(args.utility)
               else args.utility)
    options: dict[str, Any] = {"utility": utility, "seed": args.seed, "atol": args.atol,
                               "logits": args.logits, "classes": args.classes}
    if args.window is not None:
        options["window"] = args.window
    if args.hard_cap:
        options["hard_cap"] = True
    gate = StreamGate(args.strategy, args.budget, **options)
    decide = gate.decide_utility_many if args.utilities is not None else gate.decide_many
    # Decide in ten slices to report the threshold's trajectory (same decisions as one call).
    bounds = np.linspace(0, len(items), 11).astype(int)
    decisions, trajectory = [], []
    for start, stop in itertools.pairwise(bounds):
        decisions.append(decide(items[start:stop]))
        trajectory.append(gate.stats.threshold)
    queried = np.concatenate(decisions)
    out = pl.DataFrame({"row": np.arange(len(items)), "query": queried})
    if id_column is not None:
        out = out.insert_column(0, table[id_column])
    io.write_table(out, args.out, overwrite=args.overwrite)
    stats = gate.stats
    print(f"{args.stream}: {stats.seen} items, {stats.queried} queried "
          f"({stats.budget_used:.2%}; budget {args.budget:.2%}), strategy {args.strategy}")
    if args.strategy in ("variable_uncertainty", "randomized_variable_uncertainty", "split"):
        print("threshold after each tenth: " + " ".join(f"{t:.3f}" for t in trajectory))
    if args.strategy == "fixed" and stats.queried == 0 and classes:
        bound = 1 / classes + args.budget * (1 - 1 / classes)
        _note(f"--strategy fixed queried nothing: it queries an item only when its "
              f"confidence (1 - {args.utility}) is at most 1/C + budget x (1 - 1/C) = "
              f"{bound:.3f} (C = {classes}, budget {args.budget:g}), and no item was that "
              f"uncertain. A confident model needs a threshold that adapts to the stream: "
              f"--strategy variable_uncertainty or --strategy quantile")
    print(f"decisions written to {args.out}")


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from alcore import demo, simulate

    if args.k > args.items:
        parser.error(f"-k {args.k} exceeds --items {args.items}")
    # The tour replaces its own files in --out; only a missing parent or a file is refused,
    # before the minute of work.
    simulate.check_out(args.out, overwrite=True)
    demo.tour(n=args.items, classes=args.classes, k=args.k, seed=args.seed,
              repeats=args.repeats, out_dir=args.out, seeds=args.seeds)


def _serve(args: argparse.Namespace) -> None:
    import os

    from alcore import InvalidInputError
    from alcore.workflow import LedgerError, serve

    auth = os.environ.get("ALCORE_SERVE_AUTH")
    basic_auth = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise InvalidInputError("ALCORE_SERVE_AUTH must be user:password")
        basic_auth = (user, password)
    try:
        server = serve(args.ledger, host=args.host, port=args.port, basic_auth=basic_auth,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    except LedgerError as err:
        raise InvalidInputError(str(err)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1") and basic_auth is None:
        _note(f"--host {args.host}: anyone who reaches this address can write labels into "
              f"{args.ledger} (set ALCORE_SERVE_AUTH=user:password to require them)")
    print(f"alcore serve: {args.ledger} at {server.url} (Label Studio: add it as the "
          f"project's model); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import alcore

    try:
        threads = getattr(args, "threads", None)  # absent unless given (SUPPRESS default)
        if threads is not None:
            alcore.set_num_threads(threads)
        if args.command == "demo":
            _demo(args, parser)
        elif args.command == "gate":
            _gate(args)
        elif args.command == "select":
            _select(args)
        elif args.command == "simulate":
            _simulate(args)
        elif args.command == "serve":
            _serve(args)
        elif args.command == "workflow":
            from alcore.workflow import _cli

            if args.step is None:
                parser.parse_args(["workflow", "--help"])
            _cli.run(args)
    except alcore.InvalidInputError as err:
        print(f"alcore: error: {in_flags(str(err))}", file=sys.stderr)
        return 2
    except ImportError as err:  # an optional dependency (scikit-learn, matplotlib)
        print(f"alcore: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk or a folder removed mid-run: not a traceback
        print(f"alcore: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
