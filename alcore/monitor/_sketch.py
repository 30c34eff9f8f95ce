"""PoolSketch: what an audit needs to know about a pool, gathered once, in bounded memory.

Active learning biases the labeled set by design; an audit measures how far the selection
has drifted from the pool it was drawn from. Comparing with the pool itself would read
millions of rows per audit, so the pool is summarised once by :meth:`PoolSketch.build`
and every :meth:`PoolSketch.audit` reads only the sketch (its cost does not grow with the
pool).

How the sketch is built
-----------------------
Two passes over the pool, in blocks of ``BLOCK_ROWS`` rows at fixed positions (row 0,
65 536, ...) whatever the chunks the pool arrives in, so an array, a list of chunks and a
Parquet file give the same sketch to the bit.

1. A uniform sample of at most ``sample`` rows without replacement (seeded: the rows with
   the smallest of one uniform key per row, a bottom-k "reservoir"), the exact per-feature
   mean and standard deviation (float64, blocks merged by Chan et al.'s formula; the
   population standard deviation, ddof = 0) and the predicted-class histogram.
2. Per feature, ``bins`` bins whose edges are the sample's quantiles, and the exact count
   of pool rows in each (a Numba kernel); the exact size of every k-means cluster (the
   centroids are trained on the sample; every pool row is assigned to its nearest one).

When the sample holds the whole pool (``N <= sample``), the second pass reads the sample
instead of the pool: the same numbers, one read fewer.

The random-Fourier-feature (RFF) mean for the MMD is taken over the sample, not the pool.
The mean feature of a uniform sample of s rows (without replacement) misses the pool's by
``E|mu_s - mu_N|^2 = (N - s) / (N - 1) * (1 - kbar) / s <= 1/s`` in squared norm (kbar the
pool's mean kernel value over all pairs of rows, for the exact kernel; the RFF features
are its approximation), so the MMD moves by about ``1 / sqrt(s)`` at most (0.003 at the
default 100 000): a tenth of what drawing a 1000-item selection alone contributes, and 0
when the sample is the whole pool. Over all rows it would cost N / s times the sample's
``s x D x d`` multiply-adds and s D cosines (2-3 s for 100 000 rows, D = 512, d = 64 on
these machines; a 10M pool would take 100 times as long) for nothing an audit could see.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from alcore import _faiss, _progress
from alcore import _validation as v
from alcore._errors import InvalidInputError
from alcore._version import __version__
from alcore.monitor._report import AuditReport, file_path, output_path, resolve_thresholds

# Rows per block: every computation sees the pool in blocks of this many rows, at fixed
# positions, so the result does not depend on how the pool is chunked. Float64 temporaries
# of a block are BLOCK_ROWS x d x 8 bytes (32 MB at d = 64).
BLOCK_ROWS = 65_536
FORMAT = "alcore.PoolSketch"
FORMAT_VERSION = 1
# Sample rows whose distance to the selection makes the k-center radius: its cost is
# RADIUS_ROWS x n x d multiply-adds per audit (twice, with the random reference).
RADIUS_ROWS = 20_000
# Class ids at or above this are refused (the predicted-class histogram is dense).
MAX_CLASSES = 1 << 20
# Pairs of sample rows the median-heuristic bandwidth is measured on (at most).
BANDWIDTH_ROWS = 1000

_ARRAYS = ("edges", "bin_counts", "mean", "std", "sample", "sample_rows", "centroids",
           "cluster_sizes", "rff_weights", "rff_offsets", "rff_mean", "radius_rows")
_CLASS_ARRAYS = ("class_counts", "sample_classes")


class PoolSketch:
    """A pool's summary for distribution audits: build it once with :meth:`build` (or
    :meth:`load` a saved one), then :meth:`audit` selections against it.

    Attributes (read-only numpy arrays; N pool rows, d features, s sample rows, K clusters,
    D random features, C classes)
    ---------------------------------------------------------------------------------------
    n_rows : int
        N.
    edges : float64 (d, bins - 1)
        Per-feature inner bin edges: the sample's quantiles 1/bins, ..., (bins-1)/bins
        (numpy's default, linear interpolation). Bin b of feature j holds the values with b
        edges at or below them; a constant feature has all its edges equal (all its rows
        in the last bin, the others empty), which an audit handles like any other.
    bin_counts : int64 (d, bins)
        Exact pool rows per bin (sums to N per feature).
    mean, std : float64 (d,)
        Exact per-feature mean and population standard deviation over the pool.
    sample : float32 (s, d), sample_rows : int64 (s,)
        The uniform sample of pool rows and their row numbers, in pool order.
    radius_rows : int64 (min(s, RADIUS_ROWS),)
        The sample rows (positions in ``sample``) the k-center radius is measured from:
        those with the smallest sampling keys, a uniform sample of the pool themselves.
    centroids : float64 (K, d), cluster_sizes : int64 (K,)
        k-means centroids (trained on the sample) and the exact count of pool rows
        nearest each (sums to N; equal distances to the lower id).
    rff_weights : float64 (D, d), rff_offsets : float64 (D,), rff_mean : float64 (D,)
        Random Fourier features ``sqrt(2/D) cos(W z + b)`` of the standardised rows
        ``z = (x - mean) / std`` (std 0 counts as 1), W drawn from N(0, 1/bandwidth^2):
        they approximate the Gaussian kernel ``exp(-|z - z'|^2 / (2 bandwidth^2))``.
        ``rff_mean`` is their mean over the sample (see the module's notes on its error).
    rff_bandwidth : float
        The median heuristic: the median distance between standardised sample rows (of
        ``BANDWIDTH_ROWS`` = 1000 of them, a uniform sample of the pool; the median of the
        positive distances if that is 0, 1 if every distance is 0).
    class_counts : int64 (C,) or None
        Pool rows per predicted class (argmax of the predictions; ties to the lower class).
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
        # Not public: build() and load() make sketches.
        self._arrays = {}
        for name, value in arrays.items():
            value = np.ascontiguousarray(value)
            value.setflags(write=False)
            self._arrays[name] = value
        self._meta = dict(meta)
        # Each feature's sorted sample, a contiguous row per feature, for KS.
        self._sorted = np.ascontiguousarray(np.sort(self._arrays["sample"], axis=0).T)
        from alcore.monitor._kernels import float32_edges

        self._upper = float32_edges(self._arrays["edges"])
        self._radius_queries = np.ascontiguousarray(
            self._arrays["sample"][self._arrays["radius_rows"]])

    # ----------------------------------------------------------------- attributes
    @property
    def n_rows(self) -> int:
        return int(self._meta["n_rows"])

    @property
    def n_features(self) -> int:
        return int(self._arrays["mean"].shape[0])

    @property
    def bins(self) -> int:
        return int(self._arrays["bin_counts"].shape[1])

    @property
    def rff_bandwidth(self) -> float:
        return float(self._meta["rff_bandwidth"])

    @property
    def class_counts(self) -> np.ndarray | None:
        return self._arrays.get("class_counts")

    @property
    def sample_classes(self) -> np.ndarray | None:
        """int64 (s,): the sample rows' predicted classes, or None."""
        return self._arrays.get("sample_classes")

    def __getattr__(self, name: str) -> Any:
        arrays = self.__dict__.get("_arrays", {})
        if name in _ARRAYS and name in arrays:
            return arrays[name]
        raise AttributeError(f"'PoolSketch' object has no attribute {name!r}")

    def __repr__(self) -> str:
        classes = "" if self.class_counts is None else f", classes={len(self.class_counts)}"
        return (f"PoolSketch(n_rows={self.n_rows}, features={self.n_features}, "
                f"bins={self.bins}, sample={len(self._arrays['sample'])}, "
                f"clusters={len(self._arrays['centroids'])}, "
                f"rff_features={len(self._arrays['rff_mean'])}{classes})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PoolSketch):
            return NotImplemented
        return (self._meta == other._meta and self._arrays.keys() == other._arrays.keys()
                and all(a.dtype == other._arrays[k].dtype
                        and np.array_equal(a, other._arrays[k])
                        for k, a in self._arrays.items()))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value type: no hash

    # ----------------------------------------------------------------- build
    @classmethod
    def build(cls, pool_embeddings: Any, pool_predictions: Any = None, *,
              embeddings: str | None = None, bins: int = 10, sample: int = 100_000,
              clusters: int = 32, rff_features: int = 512, chunk_rows: int = 262_144,
              seed: Any = 0, progress: Callable[[int, int], Any] | None = None,
              ) -> PoolSketch:
        """Sketch a pool, reading it twice in blocks (bounded memory).

        Parameters
        ----------
        pool_embeddings : array, list of chunks, callable, or path
            * an (N, d) float array (numpy, a memory map, anything ``numpy.asarray``
              takes): read a block at a time, never copied whole;
            * a list (or tuple, or any collection that can be iterated again) of
              (rows, d) chunks, or a function returning a new iterator of chunks each
              time it is called (the pool is read twice, so an iterator such as a
              generator, which can be read only once, is refused);
            * a pool file path (Parquet, Arrow IPC, CSV, NDJSON; as :mod:`alcore.io`
              reads them), read ``chunk_rows`` rows at a time: a Parquet pool larger
              than memory works.
            Finite values; float64 is converted to float32 block by block.
        pool_predictions : array, list of chunks, str, or None
            The model's predictions for the pool, for the predicted-class histogram:
            (N, C) probabilities or logits (only their argmax is used; ties go to the
            lower class) or (N,) integer class ids in [0, 2^20). With a list of chunks,
            an array of all N rows or a list of chunks of the same lengths; with a file,
            an array or the name of its column(s): an integer column of class ids, or
            probabilities as ``probs=`` of :func:`alcore.io.read_pool` reads them.
        embeddings : str, optional
            With a file: its embedding column, as the command line's ``--embeddings``
            (a list column, or numbered columns by a pattern such as ``"e*"``; default
            ``embedding``, else ``emb``).
        bins : int
            Bins per feature, 2 to 1000 (default 10, as usual for PSI).
        sample : int
            Rows in the uniform sample (default 100 000): the quantile edges, the KS
            reference, the clustering, the RFF mean and the k-center radius come from
            it. Memory: ``sample x d x 4`` bytes, twice (the rows, and sorted per feature).
        clusters : int
            k-means clusters (default 32; at most the sample's rows).
        rff_features : int
            Random Fourier features D of the MMD (default 512).
        chunk_rows : int
            Rows per read of a file (default 262 144); the result does not depend on it.
        seed : None, int or numpy.random.Generator
            The sample, the clustering and the random features (default 0).
        progress : callable, optional
            ``progress(done, total)`` after each block, counting rows over both passes
            (total 2N). A pool given as a function returning chunks, or as a CSV or
            NDJSON file, reports its second pass only (N is unknown until the first
            ends).

        Returns
        -------
        PoolSketch

        Raises
        ------
        InvalidInputError
            Non-finite or non-numeric values (naming the row), chunks of different widths,
            a pool that changed between the two passes, bad parameters.
        """
        bins = v.integer(bins, "bins", low=2, high=1000, hint="the usual choice is 10")
        sample = v.count(sample, "sample")
        clusters = v.count(clusters, "clusters")
        rff_features = v.count(rff_features, "rff_features")
        chunk_rows = v.count(chunk_rows, "chunk_rows")
        report = _progress.reporter(progress, False, "sketch")
        gen = v.rng(seed)
        key_seed, kmeans_seed, rff_seed = (int(s) for s in gen.integers(0, 2**31, size=3))
        source = _source(pool_embeddings, pool_predictions, embeddings, chunk_rows)

        # Pass 1: the sample, the moments, the class histogram.
        keys = np.random.default_rng(key_seed)
        reservoir = _Reservoir(sample)
        moments = _Moments()
        class_counts = np.zeros(0, dtype=np.int64)
        n = 0
        total = source.total
        for start, block, classes in _blocks(source.pieces(first=True)):
            reservoir.offer(keys.random(len(block)), start, block, classes)
            moments.add(block)
            if classes is not None:
                found = np.bincount(classes)
                if len(found) > len(class_counts):
                    class_counts = np.pad(class_counts, (0, len(found) - len(class_counts)))
                class_counts[:len(found)] += found
            n = start + len(block)
            if report is not None and total is not None:
                report(n, 2 * total)
        if n == 0:
            raise InvalidInputError(f"{source.name} has no rows; pass at least one row")
        if source.predictions and source.classes is not None:
            class_counts = np.pad(class_counts, (0, max(0, source.classes - len(class_counts))))
        rows, sample_x, sample_classes, sample_keys = reservoir.result()
        d = sample_x.shape[1]
        mean, std = moments.result()

        # One feature at a time: no float64 copy of the whole sample.
        levels = np.arange(1, bins) / bins
        edges = np.empty((d, bins - 1))
        for j in range(d):
            edges[j] = np.quantile(sample_x[:, j].astype(np.float64), levels)
        np.maximum.accumulate(edges, axis=1, out=edges)  # sorted, whatever the rounding
        try:
            centroids = _faiss.kmeans_centroids(sample_x, min(clusters, len(sample_x)),
                                                kmeans_seed, "pool_embeddings")
        except InvalidInputError as err:  # its row is a position in the sample
            raise InvalidInputError(re.sub(r"\brow (\d+)", lambda m: f"row {rows[int(m[1])]}",
                                           str(err))) from None
        # Uniform sub-samples of the pool: the sample rows with the smallest keys (the
        # bottom of a bottom-k sample); the first rows in pool order would not be.
        by_key = np.argsort(sample_keys, kind="stable")
        bandwidth = _bandwidth(_standardise(sample_x[np.sort(by_key[:BANDWIDTH_ROWS])],
                                            mean, std))
        rff = np.random.default_rng(rff_seed)
        weights = rff.standard_normal((rff_features, d)) / bandwidth
        offsets = rff.uniform(0.0, 2 * np.pi, size=rff_features)
        rff_mean = _rff_mean(sample_x, mean, std, weights, offsets)

        # Pass 2: exact bin counts and cluster sizes.
        from alcore.monitor._kernels import add_bin_counts, float32_edges

        upper = float32_edges(edges)
        bin_counts = np.zeros((d, bins), dtype=np.int64)
        sizes = np.zeros(len(centroids), dtype=np.int64)
        if len(rows) == n:  # the sample is the pool
            second: Iterable[tuple[int, np.ndarray, Any]] = [(0, sample_x, None)]
        else:
            second = _blocks(source.pieces(first=False))
        seen = 0
        for start, block, _ in second:
            if len(rows) < n:
                _check_unchanged(block, start, rows, sample_x, source.name)
            add_bin_counts(block, upper, bin_counts)
            sizes += np.bincount(_faiss.assign(block, centroids), minlength=len(centroids))
            seen = start + len(block)
            if report is not None:
                report(n + seen, 2 * n)
        if seen != n:
            raise InvalidInputError(
                f"{source.name} gave {n} rows on the first pass and {seen} on the second; "
                f"the sketch reads the pool twice, and both reads must give the same rows")
        radius_rows = np.sort(by_key[:RADIUS_ROWS])  # the k-center radius's queries
        arrays = {"edges": edges, "bin_counts": bin_counts, "mean": mean, "std": std,
                  "sample": sample_x, "sample_rows": rows, "centroids": centroids,
                  "cluster_sizes": sizes, "rff_weights": weights, "rff_offsets": offsets,
                  "rff_mean": rff_mean, "radius_rows": radius_rows}
        if source.predictions:
            arrays["class_counts"] = class_counts
            arrays["sample_classes"] = sample_classes
        meta = {"n_rows": n, "rff_bandwidth": bandwidth,
                "class_source": source.class_source}
        return cls(arrays, meta)

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the sketch to ``path`` (conventionally ``.npz``; the name is used as given):
        a NumPy ``.npz`` of plain arrays, readable with ``numpy.load(path,
        allow_pickle=False)``, whose ``header`` entry holds a JSON header (format name,
        format version, alcore version, scalars). No pickle. Written to a temporary file
        beside ``path`` and renamed over it, so a crash leaves no half-written sketch."""
        path = output_path(path)
        header = {"format": FORMAT, "version": FORMAT_VERSION, "alcore": __version__,
                  **self._meta}
        payload = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                   **self._arrays}
        handle, temp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as f:
                np.savez(f, **payload)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.remove(temp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PoolSketch:
        """Read a sketch written by :meth:`save` (no pickle: ``allow_pickle=False``).

        Raises
        ------
        InvalidInputError
            A missing file, a file that is not a sketch, or one written in a newer format
            version than this alcore reads.
        """
        path = file_path(path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such file")
        foreign = (f"{path.name} is not a PoolSketch file (written by PoolSketch.save); "
                   f"build the sketch again with PoolSketch.build")
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy holds one array
                raise InvalidInputError(f"{foreign} (it holds a single array)")
            with loaded as data:
                if "header" not in data.files:
                    raise InvalidInputError(foreign)
                header = json.loads(data["header"].tobytes().decode())
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise InvalidInputError(foreign)
                version = header.get("version")
                if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                    raise InvalidInputError(f"{foreign} (format version {version!r})")
                if version > FORMAT_VERSION:
                    raise InvalidInputError(
                        f"{path.name} was written in PoolSketch format version {version!r} "
                        f"(by alcore {header.get('alcore', '?')}); this alcore "
                        f"({__version__}) reads versions up to {FORMAT_VERSION}: upgrade "
                        f"alcore, or build the sketch again")
                arrays = {name: data[name] for name in data.files if name != "header"}
        except InvalidInputError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError
                ) as err:
            raise InvalidInputError(f"{foreign} ({err})") from None
        missing = [name for name in _ARRAYS if name not in arrays]
        if missing:
            raise InvalidInputError(f"{foreign} (it lacks {', '.join(missing)})")
        try:
            meta = {k: header[k] for k in ("n_rows", "rff_bandwidth", "class_source")}
        except KeyError as err:
            raise InvalidInputError(f"{foreign} (its header lacks {err})") from None
        problem = _inconsistency(arrays, meta)
        if problem:
            raise InvalidInputError(f"{foreign} (its arrays do not fit together: {problem})")
        return cls(arrays, meta)

    # ----------------------------------------------------------------- audit
    def audit(self, selected_embeddings: Any, selected_predictions: Any = None, *,
              thresholds: dict[str, float] | None = None, seed: Any = 0) -> AuditReport:
        """How far a selection's distribution lies from the pool's: effect sizes, not
        p-values (a selection is non-random by design, so a test would only say so).

        Parameters
        ----------
        selected_embeddings : float (n, d)
            The selected items' embeddings (n >= 1, the pool's d), finite.
        selected_predictions : (n, C) probabilities or logits, or (n,) class ids, optional
            Their predictions, as ``pool_predictions`` of :meth:`build`; only for a sketch
            built with predictions.
        thresholds : dict, optional
            Overrides of :data:`alcore.monitor.DEFAULT_THRESHOLDS` (see
            :class:`AuditReport` for each metric and its default).
        seed : None, int or numpy.random.Generator
            The random reference selection (same size, drawn from the sketch's sample).

        Returns
        -------
        AuditReport
            Per-feature PSI and KS, RFF-MMD, cluster coverage and cluster-histogram TVD,
            predicted-class TVD, the k-center radius, each metric's value for a random
            selection of the same size (the noise floor), and warnings where a threshold
            is crossed.

        The cost depends on the sketch and the selection only, not on the pool's size:
        dominated by the k-center radius, ``2 x r x n x d`` multiply-adds for the
        selection and its random reference (r the sketch's ``radius_rows``, at most
        ``RADIUS_ROWS`` = 20 000): 0.3-0.4 s for 1000 items at d = 64 here.
        """
        x = v.embeddings_matrix(selected_embeddings, "selected_embeddings")
        d = self.n_features
        if x.shape[1] != d:
            raise InvalidInputError(
                f"selected_embeddings has {x.shape[1]} features (shape {x.shape}) but the "
                f"pool was sketched with {d}; pass the selected items' rows of the same "
                f"embedding")
        limits = resolve_thresholds(thresholds)
        classes = None
        if selected_predictions is not None:
            if self.class_counts is None:
                raise InvalidInputError(
                    "selected_predictions given, but the sketch was built without "
                    "pool_predictions; build it with PoolSketch.build(emb, predictions) or "
                    "leave selected_predictions out")
            classes = _class_ids(selected_predictions, "selected_predictions", 0)
            if len(classes) != len(x):
                raise InvalidInputError(
                    f"selected_predictions has {len(classes)} rows but selected_embeddings "
                    f"has {len(x)}; pass one prediction per selected item")
            if self._meta["class_source"] == "probabilities":
                width = v.as_numpy(selected_predictions, "selected_predictions")
                if width.ndim == 2 and width.shape[1] != len(self.class_counts):
                    raise InvalidInputError(
                        f"selected_predictions has {width.shape[1]} classes (columns) but the "
                        f"pool's predictions had {len(self.class_counts)}; pass the same "
                        f"model's outputs")
        gen = v.rng(seed)
        measured = self._measure(x, classes)
        s = len(self._arrays["sample"])
        pick = np.sort(gen.choice(s, size=min(len(x), s), replace=False))
        ref_classes = None if classes is None else self.sample_classes[pick]
        reference = self._measure(self._arrays["sample"][pick], ref_classes)
        random_reference = {
            "psi_max": float(reference["psi"].max()), "ks_max": float(reference["ks"].max()),
            "mmd": reference["mmd"], "cluster_coverage": reference["cluster_coverage"],
            "cluster_tvd": reference["cluster_tvd"], "class_tvd": reference["class_tvd"],
            "kcenter_radius": reference["kcenter_radius"]}
        return AuditReport(
            n_selected=len(x), n_pool=self.n_rows, n_sample=s,
            psi=measured["psi"], ks=measured["ks"], mmd=measured["mmd"],
            cluster_coverage=measured["cluster_coverage"],
            clusters_covered=measured["clusters_covered"],
            clusters_nonempty=int(np.count_nonzero(self._arrays["cluster_sizes"])),
            cluster_tvd=measured["cluster_tvd"],
            pool_cluster_share=self._arrays["cluster_sizes"] / self.n_rows,
            selected_cluster_share=measured["cluster_share"],
            class_tvd=measured["class_tvd"], pool_class_share=measured["pool_class_share"],
            selected_class_share=measured["class_share"],
            kcenter_radius=measured["kcenter_radius"],
            kcenter_farthest_row=measured["farthest_row"],
            random_reference=random_reference, thresholds=limits)

    def _measure(self, x: np.ndarray, classes: np.ndarray | None) -> dict[str, Any]:
        """Every metric of the rows x (float32 (n, d)) against the sketch."""
        from alcore.monitor._kernels import add_bin_counts

        a = self._arrays
        n = len(x)
        counts = np.zeros_like(a["bin_counts"])
        add_bin_counts(x, self._upper, counts)
        psi = population_stability(a["bin_counts"] / self.n_rows, counts / n)
        ks = _ks(self._sorted, x)
        phi = _rff_mean(x, a["mean"], a["std"], a["rff_weights"], a["rff_offsets"])
        mmd = float(np.linalg.norm(phi - a["rff_mean"]))
        sizes = a["cluster_sizes"]
        chosen = np.bincount(_faiss.assign(x, a["centroids"]), minlength=len(sizes))
        covered = chosen > 0
        pool_share = sizes / self.n_rows
        share = chosen / n
        out: dict[str, Any] = {
            "psi": psi, "ks": ks, "mmd": mmd,
            "cluster_coverage": float(pool_share[covered].sum()),
            "clusters_covered": int(np.count_nonzero(covered & (sizes > 0))),
            "cluster_tvd": total_variation(pool_share, share), "cluster_share": share,
            "class_tvd": None, "pool_class_share": None, "class_share": None}
        if classes is not None and self.class_counts is not None:
            width = max(len(self.class_counts), int(classes.max()) + 1)
            pool = np.pad(self.class_counts, (0, width - len(self.class_counts))) / self.n_rows
            mine = np.bincount(classes, minlength=width) / n
            out.update(class_tvd=total_variation(pool, mine), pool_class_share=pool,
                       class_share=mine)
        queries = a["radius_rows"]
        sq, _ = _faiss.nearest_rows(x, self._radius_queries, 1)
        far = int(np.argmax(sq[:, 0]))
        out["kcenter_radius"] = float(np.sqrt(sq[far, 0]))
        out["farthest_row"] = int(a["sample_rows"][queries[far]])
        return out


def _inconsistency(a: dict[str, np.ndarray], meta: dict[str, Any]) -> str | None:
    """What is wrong with a loaded sketch's arrays (None when they fit together), so that
    a damaged or hand-made file is refused on loading, not by a crash in an audit."""
    expected = {"edges": "f8", "bin_counts": "i8", "mean": "f8", "std": "f8",
                "sample": "f4", "sample_rows": "i8", "centroids": "f8", "cluster_sizes": "i8",
                "rff_weights": "f8", "rff_offsets": "f8", "rff_mean": "f8",
                "radius_rows": "i8", "class_counts": "i8", "sample_classes": "i8"}
    for name, value in a.items():
        if name not in expected or value.dtype != np.dtype(expected[name]):
            return f"{name} has dtype {value.dtype}"
    if (set(_CLASS_ARRAYS) & a.keys()) and not set(_CLASS_ARRAYS) <= a.keys():
        return "class_counts and sample_classes come together"
    d = a["mean"].shape[0] if a["mean"].ndim == 1 else -1
    s = a["sample"].shape[0] if a["sample"].ndim == 2 else -1
    k = a["centroids"].shape[0] if a["centroids"].ndim == 2 else -1
    n_rff = a["rff_mean"].shape[0] if a["rff_mean"].ndim == 1 else -1
    bins = a["bin_counts"].shape[1] if a["bin_counts"].ndim == 2 else -1
    n = meta["n_rows"]
    shapes = {"edges": (d, bins - 1), "bin_counts": (d, bins), "std": (d,), "sample": (s, d),
              "sample_rows": (s,), "centroids": (k, d), "cluster_sizes": (k,),
              "rff_weights": (n_rff, d), "rff_offsets": (n_rff,)}
    if "sample_classes" in a:
        shapes["sample_classes"] = (s,)
    for name, shape in shapes.items():
        if a[name].shape != shape or min(shape, default=1) < 1:
            return f"{name} has shape {a[name].shape}"
    if not isinstance(n, int) or n < s or int(a["cluster_sizes"].sum()) != n:
        return f"n_rows {n!r} against the cluster sizes"
    radius = a["radius_rows"]
    if radius.ndim != 1 or not len(radius) or radius.min() < 0 or radius.max() >= s:
        return "radius_rows outside the sample"
    if (not isinstance(meta["rff_bandwidth"], float) or not meta["rff_bandwidth"] > 0
            or not np.isfinite(meta["rff_bandwidth"])):
        return f"rff_bandwidth {meta['rff_bandwidth']!r}"
    if "class_counts" in a and (a["class_counts"].ndim != 1 or not len(a["class_counts"])):
        return "class_counts is empty"
    # The values, not only the shapes: an audit trusts them (sorted edges for the bin
    # kernel, ids that index arrays, finite numbers so no NaN reaches a report).
    for name, value in a.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return f"{name} holds a non-finite value"
        if name in ("bin_counts", "cluster_sizes", "class_counts") and value.min() < 0:
            return f"{name} holds a negative count"
    if a["std"].min() < 0:
        return "std holds a negative value"
    if a["edges"].shape[1] > 1 and (np.diff(a["edges"], axis=1) < 0).any():
        return "edges are not sorted"
    sums = a["bin_counts"].sum(axis=1)
    if (sums != n).any():
        j = int(np.argmax(sums != n))
        return f"bin_counts of feature {j} sum to {int(sums[j])}, not n_rows {n}"
    rows = a["sample_rows"]
    if rows.min() < 0 or rows.max() >= n or (np.diff(rows) <= 0).any():
        return f"sample_rows outside 0 to {n - 1} or not increasing"
    source = meta["class_source"]
    if "class_counts" in a:
        if int(a["class_counts"].sum()) != n:
            return f"class_counts sum to {int(a['class_counts'].sum())}, not n_rows {n}"
        top = len(a["class_counts"])
        if a["sample_classes"].min() < 0 or a["sample_classes"].max() >= top:
            return f"sample_classes outside 0 to {top - 1}"
        if source not in ("probabilities", "class ids"):
            return f"class_source {source!r} with class counts"
    elif source is not None:
        return f"class_source {source!r} without class counts"
    return None


# ---------------------------------------------------------------------- metrics

PSI_EPSILON = 1e-4
"""Share given to an empty bin in PSI (on either side): PSI is infinite otherwise. With it,
a bin holding a share p of one side and nothing of the other adds ``(p - 1e-4) ln(p / 1e-4)``
(0.69 for p = 0.1); a bin empty on both sides adds 0."""


def population_stability(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """PSI per row of two (d, bins) share arrays: ``sum_b (a - e) ln(a / e)`` with both
    shares raised to at least :data:`PSI_EPSILON`. float64 (d,)."""
    e = np.maximum(expected, PSI_EPSILON)
    a = np.maximum(actual, PSI_EPSILON)
    return ((a - e) * np.log(a / e)).sum(axis=1)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance of two histograms' shares."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def _ks(sorted_sample: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per feature, ``sup_t |F_sample(t) - F_x(t)|`` of the two empirical CDFs (the
    two-sample KS statistic). Both are step functions; between two consecutive values of
    x, F_x is constant and F_sample monotone, so the supremum is reached at a value of x
    itself or just below one: two searches of x's n values per feature, not of the
    sample's s."""
    n, d = x.shape
    s = sorted_sample.shape[1]
    out = np.empty(d)
    ordered = np.sort(x, axis=0)
    for j in range(d):
        mine = np.ascontiguousarray(ordered[:, j])
        ref = sorted_sample[j]
        at = np.abs(np.searchsorted(ref, mine, side="right") / s
                    - np.searchsorted(mine, mine, side="right") / n)
        below = np.abs(np.searchsorted(ref, mine, side="left") / s
                       - np.searchsorted(mine, mine, side="left") / n)
        out[j] = max(float(at.max()), float(below.max()))
    return out


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    scale = np.where(std > 0, std, 1.0)
    return (x.astype(np.float64) - mean) / scale


def _rff_mean(x: np.ndarray, mean: np.ndarray, std: np.ndarray, weights: np.ndarray,
              offsets: np.ndarray) -> np.ndarray:
    """The mean random Fourier feature of the standardised rows of x, float64 (D,), a block
    of rows at a time (the (block, D) float64 products, 8 MB, are the only temporaries)."""
    total = np.zeros(len(offsets))
    step = max(1, (1 << 20) // max(len(offsets), x.shape[1], 1))
    for start in range(0, len(x), step):
        block = _standardise(x[start:start + step], mean, std) @ weights.T
        block += offsets
        np.cos(block, out=block)
        total += block.sum(axis=0)
    return total * (np.sqrt(2.0 / len(offsets)) / len(x))


def _bandwidth(z: np.ndarray) -> float:
    """The median heuristic: the median distance between distinct rows of z (float64), the
    median of the positive ones if that is 0, 1.0 if all are 0."""
    if len(z) < 2:
        return 1.0
    sq = np.einsum("ij,ij->i", z, z)
    gram = sq[:, None] + sq[None, :] - 2 * z @ z.T
    upper = np.sqrt(np.maximum(gram[np.triu_indices(len(z), 1)], 0.0))
    median = float(np.median(upper))
    if median > 0:
        return median
    positive = upper[upper > 0]
    return float(np.median(positive)) if len(positive) else 1.0


# ---------------------------------------------------------------------- pool reading


class _Reservoir:
    """A uniform sample of at most ``size`` rows without replacement: the rows with the
    smallest keys (one uniform draw per row), kept in buffers grown up to ``size``."""

    def __init__(self, size: int):
        self.size = size
        self.count = 0
        self.keys = np.empty(0)
        self.rows = np.empty(0, dtype=np.int64)
        self.data: np.ndarray | None = None
        self.classes = np.empty(0, dtype=np.int64)

    def offer(self, keys: np.ndarray, start: int, block: np.ndarray,
              classes: np.ndarray | None) -> None:
        if self.data is None:
            self.data = np.empty((0, block.shape[1]), dtype=np.float32)
        full = self.count == self.size
        candidates = np.flatnonzero(keys < self.keys[:self.count].max()) if full else None
        if candidates is None:
            candidates = np.arange(len(block))
        if len(candidates) == 0:
            return
        ckeys = keys[candidates]
        self._grow(min(self.size, self.count + len(candidates)))
        if self.count + len(candidates) <= self.size:
            slots = np.arange(self.count, self.count + len(candidates))
            chosen = np.arange(len(candidates))
            self.count += len(candidates)
        else:
            both = np.concatenate([self.keys[:self.count], ckeys])
            keep = np.argpartition(both, self.size - 1)[:self.size]
            kept_old = np.zeros(self.count, dtype=bool)
            kept_old[keep[keep < self.count]] = True
            chosen = np.sort(keep[keep >= self.count]) - self.count
            slots = np.concatenate([np.flatnonzero(~kept_old),
                                    np.arange(self.count, self.size)])
            self.count = self.size
        picked = candidates[chosen]
        self.keys[slots] = keys[picked]
        self.rows[slots] = start + picked
        self.data[slots] = block[picked]
        if classes is not None:
            self.classes[slots] = classes[picked]

    def _grow(self, needed: int) -> None:
        """Room for ``needed`` rows (at most ``size``), doubling: the buffers follow the
        rows seen, so a ``sample`` far above the pool's size costs the pool's rows only."""
        capacity = len(self.keys)
        if needed <= capacity:
            return
        new = min(self.size, max(needed, 2 * capacity))
        keep = self.count

        def grown(old: np.ndarray) -> np.ndarray:
            out = np.empty((new, *old.shape[1:]), dtype=old.dtype)
            out[:keep] = old[:keep]
            return out

        self.keys, self.rows = grown(self.keys), grown(self.rows)
        self.data = grown(self.data)
        self.classes = grown(self.classes)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """(row numbers, rows, classes, keys), in pool order."""
        if self.data is None:
            return (np.empty(0, dtype=np.int64), np.empty((0, 0), np.float32), None,
                    np.empty(0))
        order = np.argsort(self.rows[:self.count], kind="stable")
        return (self.rows[order], np.ascontiguousarray(self.data[order]),
                self.classes[order], self.keys[order])


class _Moments:
    """Exact per-feature mean and population variance over blocks: each block's mean and
    sum of squared deviations in float64, merged as Chan, Golub and LeVeque (1979) do,
    so an offset far from 0 (1e4) costs no precision."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        from alcore.monitor._kernels import block_moments

        m = len(block)
        mean, m2 = block_moments(block)
        if self.mean is None:
            self.n, self.mean, self.m2 = m, mean, m2
            return
        total = self.n + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * m / total)
        self.n = total

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, np.sqrt(self.m2 / self.n)


class _Source:
    """A pool to read twice: ``pieces(first)`` yields (offset, float32 rows, class ids or
    None), validated, each piece's errors naming pool rows."""

    def __init__(self, name: str, pieces: Callable[[bool], Iterator[Any]],
                 total: int | None, predictions: bool, class_source: str | None,
                 classes: int | None = None):
        self.name = name
        self.pieces = lambda first: pieces(first)
        self.total = total
        self.predictions = predictions
        self.class_source = class_source
        self.classes = classes


def _shift(err: InvalidInputError, offset: int) -> InvalidInputError:
    from alcore.io import _shift_rows

    return InvalidInputError(_shift_rows(str(err), offset))


def _rows(piece: Any, name: str, offset: int, d: int | None) -> np.ndarray:
    """A piece of the pool as float32 (m, d), checked, errors naming pool rows. A piece
    with no rows (an empty batch of a reader) is (0, d), passed over by :func:`_blocks`."""
    try:
        x = v.float_array(piece, name)
        if x.ndim == 2 and x.shape[0] == 0 and x.shape[1] > 0:
            x = x.astype(np.float32)
        else:
            x = v.embeddings_matrix(x, name)
    except InvalidInputError as err:
        raise _shift(err, offset) from None
    if d is not None and x.shape[1] != d:
        raise InvalidInputError(
            f"{name}: the chunk at row {offset} has {x.shape[1]} features but the first "
            f"had {d}; every chunk needs the same width")
    return x


def _class_ids(value: Any, name: str, offset: int) -> np.ndarray:
    """Predictions as int64 class ids: the argmax of (m, C) probabilities or logits (ties
    to the lower class), or (m,) non-negative integers."""
    arr = v.as_numpy(value, name)
    if arr.ndim == 1:
        if arr.dtype.kind not in "iu":
            raise InvalidInputError(
                f"{name} is 1-D with dtype {arr.dtype}: pass (N,) integer class ids or (N, C) "
                f"probabilities")
        if len(arr) and int(arr.min()) < 0:
            row = int(np.argmax(arr < 0))
            raise InvalidInputError(
                f"{name} holds class id {int(arr[row])} in row {row + offset}; class ids "
                f"must be >= 0")
        if len(arr) and int(arr.max()) >= MAX_CLASSES:
            # The class histogram has one cell per id up to the largest: bounded, so an id
            # such as 10**12 (a hash, a row id) is refused rather than allocating terabytes.
            row = int(np.argmax(arr >= MAX_CLASSES))
            raise InvalidInputError(
                f"{name} holds class id {int(arr[row])} in row {row + offset}; class ids "
                f"must be below {MAX_CLASSES} (number the classes 0 to C-1)")
        return arr.astype(np.int64)
    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise InvalidInputError(
            f"{name} must be (N, C) probabilities or logits or (N,) integer class ids, got "
            f"shape {arr.shape} and dtype {arr.dtype}")
    if arr.shape[1] < 2:
        raise InvalidInputError(
            f"{name} has {arr.shape[1]} column(s) (shape {arr.shape}); pass (N, C) "
            f"probabilities with C >= 2, or (N,) class ids")
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InvalidInputError(
            f"{name} must be finite: row {row + offset}, column {col} is {arr[row, col]}; "
            f"replace NaN/inf or drop those items")
    return np.argmax(arr, axis=1).astype(np.int64)


def _classes_of(arr: np.ndarray) -> int:
    return arr.shape[1] if arr.ndim == 2 else 0


def _source(pool: Any, predictions: Any, spec: str | None, chunk_rows: int) -> _Source:
    if isinstance(pool, str | os.PathLike):
        return _file_source(Path(pool), predictions, spec, chunk_rows)
    if spec is not None:
        raise InvalidInputError(
            "embeddings= names a file's embedding column; pool_embeddings is not a file "
            "path: leave embeddings= out")
    if isinstance(predictions, str):
        raise InvalidInputError(
            f"pool_predictions={predictions!r} names a column, but pool_embeddings is not "
            f"a file; pass the predictions as an array")
    if callable(pool) and not hasattr(pool, "__array__"):
        return _chunk_source(pool, predictions, None)
    if isinstance(pool, Iterator):
        raise InvalidInputError(
            f"pool_embeddings is a {type(pool).__name__}, which can be read only once; the "
            f"sketch reads the pool twice: pass a list of chunks, or a function returning "
            f"a new iterator of chunks (e.g. lambda: read_chunks(path))")
    if isinstance(pool, list | tuple) and pool and v.as_numpy(pool[0], "pool_embeddings[0]"
                                                               ).ndim == 2:
        chunks = list(pool)
        try:
            total = sum(len(c) for c in chunks)
        except TypeError:
            total = None
        return _chunk_source(lambda: iter(chunks), predictions, total)
    if (isinstance(pool, Iterable) and not isinstance(pool, list | tuple | str | bytes)
            and not hasattr(pool, "__array__")):
        # A collection of chunks read afresh on each pass (not an iterator: refused above).
        return _chunk_source(lambda: iter(pool), predictions, None)
    return _array_source(pool, predictions)


def _prediction_array(predictions: Any, n: int) -> np.ndarray | None:
    if predictions is None:
        return None
    arr = v.as_numpy(predictions, "pool_predictions")
    if arr.ndim == 0 or len(arr) != n:
        raise InvalidInputError(
            f"pool_predictions has {arr.shape[0] if arr.ndim else 0} rows (shape "
            f"{arr.shape}) but pool_embeddings has {n}; pass one prediction per pool row")
    return arr


def _array_source(pool: Any, predictions: Any) -> _Source:
    arr = v.as_numpy(pool, "pool_embeddings")
    if arr.ndim != 2:
        raise InvalidInputError(
            f"pool_embeddings must be 2-D with shape (N items, d dimensions), got shape "
            f"{arr.shape}")
    v.float_array(arr[:1], "pool_embeddings")  # the dtype's error, before any work
    n, d = arr.shape
    pred = _prediction_array(predictions, n)

    def pieces(first: bool) -> Iterator[Any]:
        for start in range(0, n, BLOCK_ROWS):
            stop = min(n, start + BLOCK_ROWS)
            rows = _rows(arr[start:stop], "pool_embeddings", start, d)
            classes = (_class_ids(pred[start:stop], "pool_predictions", start)
                       if first and pred is not None else None)
            yield start, rows, classes

    return _Source("pool_embeddings", pieces, n, pred is not None,
                   _class_source(pred), _classes_of(pred) if pred is not None else None)


def _class_source(pred: np.ndarray | None) -> str | None:
    if pred is None:
        return None
    return "probabilities" if pred.ndim == 2 else "class ids"


def _chunk_source(make: Callable[[], Any], predictions: Any, total: int | None) -> _Source:
    by_chunk = isinstance(predictions, list | tuple)
    pred = None if by_chunk or predictions is None else v.as_numpy(predictions,
                                                                   "pool_predictions")
    def chunks() -> Iterator[Any]:
        try:
            it = make()
            it = iter(it)
        except TypeError:
            raise InvalidInputError(
                f"pool_embeddings() returned {type(it).__name__}, not an iterable of "
                f"(rows, d) chunks") from None
        return it

    def pieces(first: bool) -> Iterator[Any]:
        offset = 0
        d = None
        parts = iter(predictions) if (first and by_chunk) else None
        first_shape: tuple[int, int] | None = None
        for i, chunk in enumerate(chunks()):
            rows = _rows(chunk, "pool_embeddings", offset, d)
            d = rows.shape[1]
            classes = None
            if first and by_chunk:
                part = next(parts, None)
                if part is None:
                    raise InvalidInputError(
                        f"pool_predictions has {i} chunks but pool_embeddings has more; "
                        f"pass one prediction chunk per embedding chunk")
                part = v.as_numpy(part, f"pool_predictions[{i}]")
                classes = _class_ids(part, "pool_predictions", offset)
                if i == 0:
                    first_shape = (part.ndim, _classes_of(part))
                elif (part.ndim, _classes_of(part)) != first_shape:
                    # One model's outputs: the chunks must agree on what they hold.
                    if part.ndim != first_shape[0]:
                        kinds = {1: "class ids", 2: "probabilities"}
                        raise InvalidInputError(
                            f"pool_predictions chunk {i} holds {kinds[part.ndim]} but chunk 0 "
                            f"{kinds[first_shape[0]]}; pass one kind for every chunk")
                    raise InvalidInputError(
                        f"pool_predictions chunk {i} has {_classes_of(part)} classes (columns) "
                        f"but chunk 0 has {first_shape[1]}; pass the same model's outputs for "
                        f"every chunk")
                if len(classes) != len(rows):
                    raise InvalidInputError(
                        f"pool_predictions chunk {i} has {len(classes)} rows but "
                        f"pool_embeddings chunk {i} has {len(rows)}")
            elif first and pred is not None:
                if offset + len(rows) > len(pred):
                    raise InvalidInputError(
                        f"pool_predictions has {len(pred)} rows but pool_embeddings has "
                        f"more; pass one prediction per pool row")
                classes = _class_ids(pred[offset:offset + len(rows)], "pool_predictions",
                                     offset)
            yield offset, rows, classes
            offset += len(rows)
        if first and pred is not None and offset != len(pred):
            raise InvalidInputError(
                f"pool_predictions has {len(pred)} rows but pool_embeddings has {offset}; "
                f"pass one prediction per pool row")
        if first and by_chunk and next(parts, None) is not None:
            raise InvalidInputError(
                "pool_predictions has more chunks than pool_embeddings; pass one "
                "prediction chunk per embedding chunk")

    if by_chunk:
        first_part = v.as_numpy(predictions[0], "pool_predictions[0]") if predictions else None
        source = "probabilities" if first_part is not None and first_part.ndim == 2 else (
            "class ids" if first_part is not None else None)
        width = _classes_of(first_part) if first_part is not None else None
    else:
        source, width = _class_source(pred), (_classes_of(pred) if pred is not None
                                              else None)
    return _Source("pool_embeddings", pieces, total, predictions is not None, source, width)


def _file_source(path: Path, predictions: Any, spec: str | None, chunk_rows: int) -> _Source:
    from alcore import io

    lazy = io._scanner(path, ())
    try:
        schema = lazy.collect_schema()
    except Exception as err:
        raise InvalidInputError(f"{path.name}: could not be read ({err})") from None
    columns = list(schema.names())
    if spec is None:
        spec = next((c for c in ("embedding", "emb") if c in columns), None)
        if spec is None:
            raise InvalidInputError(
                f"{path.name}: no embedding column 'embedding' or 'emb'; columns are "
                f"{io._columns_text(columns)}; name a list column or a pattern such as "
                f"'e*' with embeddings=")
    wanted = [spec] if spec in columns else io._pattern_columns(columns, spec, "embeddings")
    pred_array = None
    pred_columns: list[str] = []
    class_source = None
    integer_ids = False
    if isinstance(predictions, str):
        if predictions in columns:
            pred_columns = [predictions]
            integer_ids = schema[predictions].is_integer() or _integer_text_column(
                path, predictions)
        else:
            pred_columns = io._pattern_columns(columns, predictions, "probabilities")
        class_source = "class ids" if integer_ids else "probabilities"
    elif predictions is not None:
        pred_array = v.as_numpy(predictions, "pool_predictions")
        class_source = _class_source(pred_array)
    binary = (pred_columns[0] if len(pred_columns) == 1 and not integer_ids
              and schema[pred_columns[0]].is_numeric() else None)
    lazy = lazy.select(list(dict.fromkeys(wanted + pred_columns)))
    total = None

    def pieces(first: bool) -> Iterator[Any]:
        nonlocal total
        offset = 0
        for chunk in io._chunks(lazy, path, chunk_rows):
            try:
                matrix = io.embedding_matrix(chunk, spec)
            except InvalidInputError as err:
                raise _shift(err, offset) from None
            rows = _rows(matrix, "pool_embeddings", offset, None)
            classes = None
            if first and pred_columns:
                if integer_ids:
                    column = chunk[predictions]
                    null = io._first_null(column)
                    if null is not None:
                        raise InvalidInputError(
                            f"{path.name}: class id column {predictions!r} is missing "
                            f"(empty or null) in row {null + offset}; fill it in or drop "
                            f"that row")
                    values = column.to_numpy()
                    if values.dtype.kind == "f":  # a text file's ids, read as Float64
                        whole = values == np.floor(values)
                        if not whole.all():
                            row = int(np.argmin(whole))
                            raise InvalidInputError(
                                f"{path.name}: class id column {predictions!r} holds "
                                f"{v.shown(values[row])} in row {row + offset}; class ids are "
                                f"whole numbers")
                        values = values.astype(np.int64)
                    classes = _class_ids(values, "pool_predictions", offset)
                else:
                    if binary is not None:
                        # One column is a binary model's p, read as [1 - p, p]: beyond
                        # [0, 1] it is something else (class ids stored as floats), whose
                        # classes 2, 3, ... would silently become class 1.
                        values = chunk[binary].fill_null(0.5).to_numpy()  # nulls: below
                        outside = ~((values >= 0) & (values <= 1))
                        if outside.any():
                            row = int(np.argmax(outside))
                            raise InvalidInputError(
                                f"{path.name}: column {binary!r} holds "
                                f"{v.shown(values[row])} in row {row + offset}; one column "
                                f"is read as a binary model's positive-class probability, "
                                f"in [0, 1]; store class ids as integers (e.g. "
                                f"pl.col({binary!r}).cast(pl.Int64))")
                    probs = io.probability_matrix(chunk, predictions, row_offset=offset)
                    classes = _class_ids(probs, "pool_predictions", offset)
                    found.classes = probs.shape[1]
            elif first and pred_array is not None:
                if offset + len(rows) > len(pred_array):
                    raise InvalidInputError(
                        f"pool_predictions has {len(pred_array)} rows but {path.name} has "
                        f"more; pass one prediction per pool row")
                classes = _class_ids(pred_array[offset:offset + len(rows)],
                                     "pool_predictions", offset)
            yield offset, rows, classes
            offset += len(rows)
        if first and pred_array is not None and offset != len(pred_array):
            raise InvalidInputError(
                f"pool_predictions has {len(pred_array)} rows but {path.name} has {offset}; "
                f"pass one prediction per pool row")

    try:
        import polars as pl

        total = int(lazy.select(pl.len()).collect().item()) if io._format(path) not in (
            "csv", "ndjson") else None
    except Exception:
        total = None
    width = (_classes_of(pred_array) if pred_array is not None else None)
    found = _Source(path.name, pieces, total, predictions is not None, class_source, width)
    return found


def _integer_text_column(path: Path, name: str) -> bool:
    """Whether a CSV/NDJSON column holds integers as polars infers it (alcore.io reads
    such columns as Float64, for probabilities that start with 0s and 1s)."""
    import polars as pl

    from alcore import io

    fmt = io._format(path)
    if fmt not in ("csv", "ndjson"):
        return False
    scan = pl.scan_csv if fmt == "csv" else pl.scan_ndjson
    try:
        return bool(scan(path).collect_schema()[name].is_integer())
    except Exception:  # unreadable: the reader reports it with its own message
        return False


def _blocks(pieces: Iterable[tuple[int, np.ndarray, Any]]
            ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Re-cut pieces of any length into blocks of BLOCK_ROWS rows starting at multiples of
    BLOCK_ROWS (the last shorter): views where a piece covers a whole block, a copy only
    of the rows of a block that spans pieces."""
    held: list[tuple[np.ndarray, Any]] = []
    held_rows = 0
    start = 0
    for _, rows, classes in pieces:
        at = 0
        while at < len(rows):
            take = min(BLOCK_ROWS - held_rows, len(rows) - at)
            part = rows[at:at + take]
            part_classes = None if classes is None else classes[at:at + take]
            at += take
            if held_rows == 0 and take == BLOCK_ROWS:
                yield start, part, part_classes
                start += BLOCK_ROWS
                continue
            held.append((part, part_classes))
            held_rows += take
            if held_rows == BLOCK_ROWS:
                yield start, *_join(held)
                start += BLOCK_ROWS
                held, held_rows = [], 0
    if held_rows:
        yield start, *_join(held)


def _join(held: list[tuple[np.ndarray, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
    rows = np.concatenate([h[0] for h in held])
    classes = (None if held[0][1] is None
               else np.concatenate([h[1] for h in held]))
    return rows, classes


def _check_unchanged(block: np.ndarray, start: int, rows: np.ndarray, sample: np.ndarray,
                     name: str) -> None:
    """The second pass must read the rows the first did: its sampled rows are compared
    with the sample (cheap: the sampled rows of the block only)."""
    lo, hi = np.searchsorted(rows, [start, start + len(block)])
    if hi > lo and not np.array_equal(block[rows[lo:hi] - start], sample[lo:hi]):
        bad = int(rows[lo + int(np.argmax(np.any(block[rows[lo:hi] - start] != sample[lo:hi],
                                                  axis=1)))])
        raise InvalidInputError(
            f"{name}: row {bad} differs between the two passes over the pool; the sketch "
            f"reads the pool twice, so it must give the same rows in the same order both "
            f"times (a function returning chunks must not shuffle them)")


__all__ = ["BLOCK_ROWS", "FORMAT_VERSION", "MAX_CLASSES", "PSI_EPSILON", "PoolSketch",
           "population_stability", "total_variation"]

v.guard_signatures(globals())
