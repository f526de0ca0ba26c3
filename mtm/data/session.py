"""The one data type of the package: a trial-aligned, binned recording session.

Every part of `mtm` consumes a :class:`Session`: the masking schemes, the models, training and
evaluation. A session holds the spike counts of one recording, cut into trials aligned to an event
and binned in time, with a brain region per neuron and optional behaviour, splits and ground truth.

Shapes (K trials, T bins, N neurons):

============  ==========================  ==================================================
field         shape / type                meaning
============  ==========================  ==================================================
eid           str                         session id (an IBL eid, a file name, ...)
spikes        (K, T, N) unsigned integer  spike counts per bin
regions       (N,) str                    brain region acronym per neuron
behavior      dict of (K,) or (K, T)      per-trial (``choice`` in {-1, +1}, ``block``,
                                          ``reward`` in {0, 1}, ...) or per-bin
                                          (``whisker_me``, ``wheel_speed``) variables
splits        dict of int arrays          trial indices of ``train`` / ``val`` / ``test``
bin_size      float, seconds              width of one time bin
align         dict                        ``{"event": str, "window": (start, stop)}`` in s
rates         (K, T, N) float32 or None   ground-truth expected counts per bin (synthetic)
truth         GroundTruth or None         what generated the rates: latents, inputs, per-neuron
                                          parameters (synthetic; :mod:`mtm.data.truth`)
meta          dict (JSON-serialisable)    free-form provenance
============  ==========================  ==================================================

Sessions are immutable: the arrays are read-only views, and methods return new sessions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mtm.atomic import atomic_write
from mtm.data.truth import GroundTruth

SPLIT_NAMES = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
DEFAULT_SPLIT_SEED = 42
FORMAT_VERSION = 1


def split_trials(n_trials: int, seed: int = DEFAULT_SPLIT_SEED,
                 fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """Random train / val / test split of ``n_trials`` trials, as the MtM reference does it.

    The trials are permuted with ``numpy.random.default_rng(seed)`` and cut at
    ``int(f_train * K)`` and ``int((f_train + f_val) * K)`` (70 / 10 / 20 % by default).
    Unlike the reference, which seeds NumPy once per script so a session's split depends on the
    order sessions were processed, the split here depends only on ``seed`` and ``n_trials``.
    Indices are sorted within each split.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials: expected a positive number of trials, got {n_trials}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions: expected three non-negative numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n_trials)
    cut1 = int(fractions[0] * n_trials)
    cut2 = int(round(fractions[0] + fractions[1], 9) * n_trials)
    parts = (order[:cut1], order[cut1:cut2], order[cut2:])
    return {name: np.sort(part).astype(np.int64) for name, part in zip(SPLIT_NAMES, parts)}


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _compact_counts(spikes) -> np.ndarray:
    """Validate spike counts and store them in the smallest unsigned integer type that fits."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise ValueError(f"spikes: expected a (trials, bins, neurons) array, got shape {spikes.shape}")
    if 0 in spikes.shape:
        raise ValueError(f"spikes: expected at least one trial, bin and neuron, got shape {spikes.shape}")
    if spikes.dtype == bool or not (np.issubdtype(spikes.dtype, np.integer)
                                    or np.issubdtype(spikes.dtype, np.floating)):
        raise ValueError(f"spikes: expected integer counts, got dtype {spikes.dtype}")
    if np.issubdtype(spikes.dtype, np.floating):
        if not np.isfinite(spikes).all():
            raise ValueError("spikes: counts must be finite, found NaN or inf")
        if (spikes != np.round(spikes)).any():
            raise ValueError("spikes: counts must be whole numbers, found fractional values")
    low, high = spikes.min(), spikes.max()
    if low < 0:
        raise ValueError(f"spikes: counts must be non-negative, found {low}")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if high <= np.iinfo(dtype).max:
            return spikes if spikes.dtype == dtype else spikes.astype(dtype)
    raise ValueError(f"spikes: counts up to {high} per bin do not fit in 32 bits")


def _check_regions(regions, n_neurons: int) -> np.ndarray:
    regions = np.asarray(regions)
    if regions.ndim != 1 or regions.shape[0] != n_neurons:
        raise ValueError(f"regions: expected one label per neuron, shape ({n_neurons},), got {regions.shape}")
    if regions.dtype.kind not in "UO":
        raise ValueError(f"regions: expected strings (region acronyms), got dtype {regions.dtype}")
    if not all(isinstance(r, str) for r in regions.tolist()):
        raise ValueError("regions: every label must be a string")
    regions = regions.astype(str)
    if (np.char.strip(regions) == "").any():
        raise ValueError("regions: empty region label; use an explicit label such as 'root' or 'unknown'")
    return regions


def _check_behavior(behavior, n_trials: int, n_bins: int) -> dict[str, np.ndarray]:
    if behavior is None:
        return {}
    if not isinstance(behavior, dict):
        raise ValueError(f"behavior: expected a dict of arrays, got {type(behavior).__name__}")
    out = {}
    for key, value in behavior.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"behavior: keys must be non-empty strings without '/', got {key!r}")
        value = np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise ValueError(f"behavior[{key!r}]: expected numbers, got dtype {value.dtype}")
        if value.ndim not in (1, 2) or value.shape[0] != n_trials or (value.ndim == 2 and value.shape[1] != n_bins):
            raise ValueError(f"behavior[{key!r}]: expected shape ({n_trials},) per trial or "
                             f"({n_trials}, {n_bins}) per bin, got {value.shape}")
        if np.isinf(value).any():
            raise ValueError(f"behavior[{key!r}]: infinite values (use NaN for missing data)")
        if key == "choice" and not np.isin(value, (-1, 1)).all():
            raise ValueError(f"behavior['choice']: expected values in {{-1, +1}}, got {np.unique(value)[:10]}")
        if key == "reward" and not np.isin(value, (0, 1)).all():
            raise ValueError(f"behavior['reward']: expected values in {{0, 1}}, got {np.unique(value)[:10]}")
        out[key] = _readonly(value)
    return out


def _check_splits(splits, n_trials: int) -> dict[str, np.ndarray]:
    if not isinstance(splits, dict):
        raise ValueError(f"splits: expected a dict of trial-index arrays, got {type(splits).__name__}")
    unknown = set(splits) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"splits: unknown split names {sorted(unknown)}, expected some of {SPLIT_NAMES}")
    out, seen = {}, np.zeros(n_trials, dtype=bool)
    for name in SPLIT_NAMES:
        if name not in splits:
            continue
        idx = np.asarray(splits[name])
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ValueError(f"splits[{name!r}]: expected a 1-d array of integer trial indices, "
                             f"got shape {idx.shape} dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_trials):
            raise ValueError(f"splits[{name!r}]: trial indices must lie in [0, {n_trials}), "
                             f"got {idx.min()}..{idx.max()}")
        if np.unique(idx).size != idx.size:
            raise ValueError(f"splits[{name!r}]: repeated trial indices")
        if seen[idx].any():
            raise ValueError(f"splits: split {name!r} overlaps an earlier split (trials {idx[seen[idx]][:5]})")
        seen[idx] = True
        out[name] = _readonly(idx)
    return out


def _check_align(align) -> dict:
    if align is None:
        return {"event": "unknown", "window": None}
    if not isinstance(align, dict) or "event" not in align or "window" not in align:
        raise ValueError(f"align: expected {{'event': str, 'window': (start, stop)}}, got {align!r}")
    window = align["window"]
    if window is not None:
        window = tuple(float(w) for w in window)
        if len(window) != 2 or not window[0] < window[1]:
            raise ValueError(f"align['window']: expected (start, stop) with start < stop, got {align['window']!r}")
    return {"event": str(align["event"]), "window": window}


def _npz_problem(path: Path) -> str | None:
    """Why an archive's arrays could not be a session's, found before numpy allocates them: an array of
    Python objects, or one whose header claims more bytes than the archive holds for it (a corrupt or
    hostile file claiming terabytes); None when the headers look sound."""
    import zipfile

    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                continue
            with archive.open(member) as fh:
                version = npy.read_magic(fh)
                if version not in readers:
                    continue  # numpy's own reader checks the rest
                shape, _, dtype = readers[version](fh)
                held = member.file_size - fh.tell()
            name = member.filename[:-len(".npy")]
            if dtype.hasobject:
                return f"the array {name!r} holds Python objects, which a session file never does; not loaded"
            claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if claimed > held:
                return (f"not a readable session file: the array {name!r} claims shape {shape} "
                        f"({claimed / 2 ** 30:,.1f} GiB) but the file holds {held:,} bytes of it")
    return None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; ``ValueError`` naming the file when it is not a readable one."""
    import zipfile
    import zlib

    with open(path, "rb") as fh:
        start = fh.read(6)
    if start == b"\x93NUMPY":
        raise ValueError(f"{path}: a single array (.npy), not a session file (.npz written by Session.save)")
    if not start.startswith(b"PK"):
        raise ValueError(f"{path}: not a readable session file: not an npz archive (a zip of arrays, as "
                         "Session.save writes); " + (f"it starts with {start!r}" if start else "it is empty"))
    unreadable = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, MemoryError)
    try:
        problem = _npz_problem(path)
        loaded = None if problem else np.load(path, allow_pickle=False)
    except unreadable as err:
        raise ValueError(f"{path}: not a readable session file ({type(err).__name__}: {err})") from None
    if problem:
        raise ValueError(f"{path}: {problem}")
    try:
        with loaded as data:
            return {key: data[key] for key in data.files}
    except unreadable as err:
        raise ValueError(f"{path}: not a readable session file, truncated or corrupt "
                         f"({type(err).__name__}: {err})") from None


def _read_header(path: Path, raw: np.ndarray) -> dict:
    """The JSON header of a session file, checked for the fields :meth:`Session.load` needs."""
    try:
        header = json.loads(str(raw))
    except ValueError as err:
        raise ValueError(f"{path}: the session header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the session header is a JSON {type(header).__name__}, expected an object")
    if header.get("format") == "mtm.Session":
        missing = [key for key in ("eid", "bin_size") if key not in header]
        if missing:
            raise ValueError(f"{path}: the session header lacks {missing}")
        if not isinstance(header.get("version", 0), int):
            raise ValueError(f"{path}: the session header's version is {header['version']!r}, expected an integer")
        if not isinstance(header.get("meta", {}), dict):
            raise ValueError(f"{path}: the session header's meta is not an object")
    return header


class Session:
    """One trial-aligned, binned recording session (see the module docstring for the fields).

    Only ``eid``, ``spikes`` and ``regions`` are required. Without ``splits`` the trials are split
    70 / 10 / 20 % at random with seed 42 (:func:`split_trials`). Every argument is validated; a
    malformed one raises ``ValueError`` naming the field and what was expected.

    >>> import numpy as np
    >>> s = Session(eid="demo", spikes=np.zeros((10, 100, 3), int), regions=["CA1", "CA1", "LP"])
    >>> s
    Session(eid='demo', trials=10 (train 7 / val 1 / test 2), bins=100 x 20 ms, neurons=3, regions={CA1: 2, LP: 1}, behavior=[])
    """

    def __init__(self, eid: str, spikes, regions, *, behavior: dict | None = None,
                 splits: dict | None = None, bin_size: float = 0.02, align: dict | None = None,
                 rates=None, truth: GroundTruth | None = None, meta: dict | None = None):
        if not isinstance(eid, str) or not eid.strip():
            raise ValueError(f"eid: expected a non-empty string, got {eid!r}")
        spikes = _compact_counts(spikes)
        n_trials, n_bins, n_neurons = spikes.shape
        if isinstance(bin_size, bool) or not (isinstance(bin_size, (int, float)) and np.isfinite(bin_size)
                                              and bin_size > 0):
            raise ValueError(f"bin_size: expected a positive number of seconds, got {bin_size!r}")
        self.eid = eid
        self.spikes = _readonly(spikes)
        self.regions = _readonly(_check_regions(regions, n_neurons))
        self.behavior = _check_behavior(behavior, n_trials, n_bins)
        self.splits = _check_splits(split_trials(n_trials) if splits is None else splits, n_trials)
        self.bin_size = float(bin_size)
        self.align = _check_align(align)
        if self.align["window"] is not None:
            expected = (self.align["window"][1] - self.align["window"][0]) / self.bin_size
            if abs(expected - n_bins) > 1e-6 * max(1.0, expected):
                raise ValueError(f"align['window']: {self.align['window']} s at bin_size {self.bin_size} s "
                                 f"gives {expected:g} bins, but spikes has {n_bins}")
        if rates is not None:
            rates = np.asarray(rates, dtype=np.float32)
            if rates.shape != spikes.shape:
                raise ValueError(f"rates: expected the shape of spikes {spikes.shape}, got {rates.shape}")
            if not np.isfinite(rates).all() or (rates < 0).any():
                raise ValueError("rates: expected finite, non-negative expected counts per bin")
            rates = _readonly(rates)
        self.rates = rates
        if truth is not None:
            if not isinstance(truth, GroundTruth):
                raise ValueError(f"truth: expected a mtm.data.truth.GroundTruth, got {type(truth).__name__}")
            if rates is None:
                raise ValueError("truth: a session with ground truth needs its ground-truth rates too")
            truth.check_fits(n_trials, n_bins, n_neurons)
        self.truth = truth
        meta = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise ValueError(f"meta: expected a dict, got {type(meta).__name__}")
        try:
            self.meta = json.loads(json.dumps(meta))
        except (TypeError, ValueError) as err:
            raise ValueError(f"meta: must be JSON-serialisable ({err})") from None

    # ------------------------------------------------------------------ shape helpers
    @property
    def n_trials(self) -> int:
        return self.spikes.shape[0]

    @property
    def n_bins(self) -> int:
        return self.spikes.shape[1]

    @property
    def n_neurons(self) -> int:
        return self.spikes.shape[2]

    @property
    def region_names(self) -> list[str]:
        """Distinct region labels, in order of first appearance along the neuron axis."""
        _, first = np.unique(self.regions, return_index=True)
        return [str(self.regions[i]) for i in sorted(first)]

    def region_counts(self) -> dict[str, int]:
        """Number of neurons per region, in :attr:`region_names` order."""
        return {r: int((self.regions == r).sum()) for r in self.region_names}

    def bin_times(self) -> np.ndarray:
        """(T,) centre of each bin, in seconds relative to the alignment event."""
        start = self.align["window"][0] if self.align["window"] is not None else 0.0
        return start + (np.arange(self.n_bins) + 0.5) * self.bin_size

    # ------------------------------------------------------------------ derived sessions
    def replace(self, **changes) -> Session:
        """A new, validated session with some fields replaced."""
        fields = dict(eid=self.eid, spikes=self.spikes, regions=self.regions, behavior=self.behavior,
                      splits=self.splits, bin_size=self.bin_size, align=self.align, rates=self.rates,
                      truth=self.truth, meta=self.meta)
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"replace: unknown Session fields {sorted(unknown)}")
        fields.update(changes)
        eid, spikes, regions = fields.pop("eid"), fields.pop("spikes"), fields.pop("regions")
        return Session(eid, spikes, regions, **fields)

    def resplit(self, seed: int = DEFAULT_SPLIT_SEED,
                fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> Session:
        """The same session with a new random train / val / test split."""
        return self.replace(splits=split_trials(self.n_trials, seed, fractions))

    def select_trials(self, trials) -> Session:
        """A session holding only ``trials`` (integer indices, a boolean mask over the trials, or a split
        name); splits are re-indexed."""
        if isinstance(trials, str):
            if trials not in self.splits:
                raise ValueError(f"select_trials: no split named {trials!r}; have {sorted(self.splits)}")
            trials = self.splits[trials]
        trials = np.asarray(trials)
        if trials.dtype == bool:
            if trials.shape != (self.n_trials,):
                raise ValueError(f"select_trials: a boolean mask needs one entry per trial, shape ({self.n_trials},); "
                                 f"got shape {trials.shape}")
            trials = np.flatnonzero(trials)
        elif trials.size and trials.dtype.kind not in "iu":
            raise ValueError(f"select_trials: expected integer trial indices (or a boolean mask over the "
                             f"{self.n_trials} trials), got {trials.dtype} values {trials.reshape(-1)[:5].tolist()}")
        trials = trials.astype(np.int64)
        if trials.ndim != 1 or trials.size == 0:
            raise ValueError("select_trials: expected a non-empty 1-d array of trial indices")
        if trials.min() < 0 or trials.max() >= self.n_trials:
            raise ValueError(f"select_trials: indices must lie in [0, {self.n_trials})")
        if np.unique(trials).size != trials.size:
            raise ValueError("select_trials: repeated trial indices")
        new_index = np.full(self.n_trials, -1)
        new_index[trials] = np.arange(trials.size)
        splits = {name: np.sort(new_index[idx][new_index[idx] >= 0]) for name, idx in self.splits.items()}
        return self.replace(spikes=self.spikes[trials], splits=splits,
                            behavior={k: v[trials] for k, v in self.behavior.items()},
                            rates=None if self.rates is None else self.rates[trials],
                            truth=None if self.truth is None else self.truth.select_trials(trials))

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the session to ``path`` (``.npz``, no pickle), atomically.

        The file is written under a temporary name in the same folder and renamed into place, so
        an interrupted save never leaves a partial file and never destroys an existing one.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        header = dict(format="mtm.Session", version=FORMAT_VERSION, eid=self.eid, bin_size=self.bin_size,
                      align=self.align, meta=self.meta)
        arrays = {"header": np.array(json.dumps(header)), "spikes": self.spikes, "regions": self.regions}
        arrays.update({f"behavior/{k}": v for k, v in self.behavior.items()})
        arrays.update({f"splits/{k}": v for k, v in self.splits.items()})
        if self.rates is not None:
            arrays["rates"] = self.rates
        if self.truth is not None:
            arrays.update(self.truth.to_arrays())

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path) -> Session:
        """Read a session written by :meth:`save` (no pickle) and validate it again."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no session file at {path}")
        if path.is_dir():
            raise ValueError(f"{path}: a folder, expected a session file (.npz written by Session.save)")
        arrays = _read_npz(path)
        if "header" not in arrays:
            raise ValueError(f"{path}: not an mtm session file (no header)")
        header = _read_header(path, arrays.pop("header"))
        if header.get("format") != "mtm.Session":
            raise ValueError(f"{path}: not an mtm session file (format {header.get('format')!r})")
        if header.get("version", 0) > FORMAT_VERSION:
            raise ValueError(f"{path}: written by a newer mtm (format version {header['version']})")
        for key in ("spikes", "regions"):
            if key not in arrays:
                raise ValueError(f"{path}: missing the {key!r} array")
        behavior = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("behavior/")}
        splits = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("splits/")}
        align = header.get("align")
        return cls(header["eid"], arrays["spikes"], arrays["regions"], behavior=behavior, splits=splits,
                   bin_size=header["bin_size"], align=align, rates=arrays.get("rates"),
                   truth=GroundTruth.from_arrays(arrays), meta=header.get("meta", {}))

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        splits = " / ".join(f"{name} {len(idx)}" for name, idx in self.splits.items())
        regions = ", ".join(f"{r}: {n}" for r, n in self.region_counts().items())
        return (f"Session(eid={self.eid!r}, trials={self.n_trials} ({splits}), "
                f"bins={self.n_bins} x {self.bin_size * 1000:g} ms, neurons={self.n_neurons}, "
                f"regions={{{regions}}}, behavior=[{', '.join(self.behavior)}])")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        same_arrays = (np.array_equal(self.spikes, other.spikes) and np.array_equal(self.regions, other.regions)
                       and self.behavior.keys() == other.behavior.keys()
                       and all(np.array_equal(v, other.behavior[k], equal_nan=v.dtype.kind == "f")
                               for k, v in self.behavior.items())
                       and self.splits.keys() == other.splits.keys()
                       and all(np.array_equal(v, other.splits[k]) for k, v in self.splits.items())
                       and (self.rates is None) == (other.rates is None)
                       and (self.rates is None or np.array_equal(self.rates, other.rates))
                       and self.truth == other.truth)
        return (same_arrays and self.eid == other.eid and self.bin_size == other.bin_size
                and self.align == other.align and self.meta == other.meta)

    __hash__ = None
