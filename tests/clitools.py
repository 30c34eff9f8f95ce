"""Shared by the command-line tests: run the CLI in-process and write pool files."""

from __future__ import annotations

import gzip

import polars as pl

from alcore.cli import main


def run(args, capsys):
    """(exit code, stdout, stderr) of the command line, argparse's own exits included."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(table: pl.DataFrame, path):
    """Write ``table`` in the format its name says (.parquet, .csv, .ndjson, .arrow, each
    optionally .gz-compressed); return the path."""
    name = path.name
    if name.endswith(".gz"):
        inner = path.with_name(name[:-3])
        write(table, inner)
        path.write_bytes(gzip.compress(inner.read_bytes()))
        inner.unlink()
    elif name.endswith(".arrow"):
        table.write_ipc(path)
    else:
        getattr(table, "write_" + name.rsplit(".", 1)[1])(path)
    return path
