"""The MtM reference's own checkpoints (``model_best.pt``), read without running them.

The reference saves ``torch.save({"model": model, "epoch": epoch})``: a pickle of the whole module,
which names the reference's classes (``models.ndt1.NDT1``, ...). Loading it the usual way imports and
runs whatever the pickle names. Here the torch zip archive is opened with :mod:`zipfile` and its
``data.pkl`` read by :class:`RestrictedUnpickler`, which never imports anything:

* a short allow-list of globals resolves to this module's own implementations: the tensor rebuilders
  ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` (views of the archive's ``data/``
  storages), the storage types ``torch.FloatStorage`` etc. (their dtype), ``collections.OrderedDict``
  and ``builtins.set``;
* every other global becomes an inert :class:`Record` class: creating an instance (``NEWOBJ``) only
  remembers its arguments, and ``BUILD`` stores its state as data;
* calling any other global (``REDUCE``, ``INST``, ``OBJ``), e.g. ``os.system`` or ``builtins.eval``,
  raises :class:`RefusedGlobal` naming it, before anything runs.

:func:`import_reference` then maps the records onto an :class:`mtm.models.NDT1` (reference notes 2.1-2.3):
sizes from the tensors and recorded attributes, ``query``/``key``/``value`` fused into ``qkv``, the prompt
table reordered by name to :data:`mtm.masking.PROMPT_IDS`, the embedding's ``scale`` folded into the
projection, and the per-session stitchers (keyed by neuron count ``str(N)`` in the reference) given to
the sessions the caller names. Reference parameters with no place in the mtm model are reported and dropped.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mtm.masking import PROMPT_IDS
from mtm.models import NDT1, ModelConfig

#: the reference's prompt order when a checkpoint records none (``mask_types``, notes 2.3)
REFERENCE_PROMPT_ORDER = ("neuron", "causal", "inter-region", "intra-region")

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class RefusedGlobal(ValueError):
    """The pickle asks to call a global that is not on the allow-list."""


class _RecordType(type):
    """Metaclass of the inert stand-ins: calling one (REDUCE, INST, OBJ) is refused."""

    def __call__(cls, *args, **kwargs):
        raise RefusedGlobal(f"refused: the pickle calls {cls.global_name}, which is not an allowed tensor "
                            f"rebuilder or container; nothing was run")


class Record(metaclass=_RecordType):
    """An inert object of a class the pickle names: its ``NEWOBJ`` arguments and ``BUILD`` state, as data."""

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        record = object.__new__(cls)
        record.args, record.state = args, None
        return record

    def __setstate__(self, state):
        self.state = state

    @property
    def attributes(self) -> dict:
        """The recorded instance attributes (``__dict__`` of the pickled object)."""
        state = self.state[0] if isinstance(self.state, tuple) else self.state
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<record of {self.global_name}>"


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: torch.dtype


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch zip archive's ``data.pkl`` into plain data, tensors and :class:`Record` objects.

    ``storages(key, dtype, numel)`` returns the flat tensor of storage ``data/<key>``.
    """

    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages
        self._records: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module
        allowed = {("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "set"): set,
                   ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
                   ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}
        if (module, name) in allowed:
            return allowed[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        key = (module, name)
        if key not in self._records:
            self._records[key] = _RecordType(str(name), (Record,), {"global_name": f"{module}.{name}",
                                                                   "__module__": __name__})
        return self._records[key]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}: not a torch storage")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise RefusedGlobal(f"refused: unknown storage type {getattr(storage_type, 'global_name', storage_type)}")
        if not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r}")
        return self._storages(key, storage_type.dtype, numel)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None):
    """``torch._utils._rebuild_tensor_v2``: a tensor viewing a storage (a copy of it, here)."""
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise pickle.UnpicklingError("a tensor rebuild without a storage")
    if backward_hooks or metadata:
        raise pickle.UnpicklingError("a tensor with backward hooks or metadata: not a plain checkpoint tensor")
    size, stride = tuple(size), tuple(stride)
    if not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)) or len(size) != len(stride):
        raise pickle.UnpicklingError(f"malformed tensor: offset {storage_offset}, size {size}, stride {stride}")
    if all(size):
        end = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
        if end > storage.numel():
            raise pickle.UnpicklingError(f"a tensor of size {size} reaches past its storage of {storage.numel()}")
    return torch.as_strided(storage, size, stride, storage_offset).clone()


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    """``torch._utils._rebuild_parameter``: the parameter's data, as a plain tensor."""
    if not isinstance(data, torch.Tensor) or backward_hooks:
        raise pickle.UnpicklingError("a parameter rebuild without a plain tensor")
    return data


def read_reference_pickle(path) -> object:
    """The object a reference ``torch.save`` file holds, with every class replaced by a :class:`Record`.

    Raises ``ValueError`` for a file that is not a complete torch zip archive and
    :class:`RefusedGlobal` (a ``ValueError``) for a pickle that
    calls anything but the allowed tensor rebuilders and containers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a complete torch checkpoint archive (truncated, or not written by "
                         f"torch.save >= 1.6): {err}") from None
    with archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path}: a zip archive without exactly one <name>/data.pkl: not a torch checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path}: big-endian storages are not supported")
        cache: dict[str, torch.Tensor] = {}

        def storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
            if key not in cache:
                name = f"{prefix}data/{key}"
                try:
                    raw = archive.read(name)
                except (KeyError, zipfile.BadZipFile, OSError) as err:
                    raise pickle.UnpicklingError(f"storage {name}: {err}") from None
                itemsize = torch.empty(0, dtype=dtype).element_size()
                if len(raw) != numel * itemsize:
                    raise pickle.UnpicklingError(f"storage {name} holds {len(raw)} bytes, expected {numel * itemsize}")
                cache[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
            return cache[key]

        try:
            data = archive.read(pickles[0])
            return RestrictedUnpickler(io.BytesIO(data), storage).load()
        except RefusedGlobal as err:
            raise RefusedGlobal(f"{path}: {err}") from None
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, AttributeError, TypeError, ValueError,
                IndexError, KeyError, OSError) as err:
            raise ValueError(f"{path}: unreadable checkpoint pickle ({type(err).__name__}: {err})") from None


# ---------------------------------------------------------------------------------------- mapping
@dataclass
class ReferenceImport:
    """What :func:`import_reference` did: the sessions kept and the reference parameters dropped."""

    source: str
    epoch: int | None
    sessions: list[tuple[str, int]]
    masking: str
    prompted: bool
    dropped: list[str] = field(default_factory=list)

    def extra(self) -> dict:
        """The ``extra`` of the saved checkpoint (``mtm evaluate`` and ``mtm finetune`` read ``train``)."""
        return {"train": {"masking": self.masking, "prompted": self.prompted},
                "imported_from": {"path": self.source, "epoch": self.epoch, "dropped": self.dropped}}


def _modules(record: Record, prefix: str = "", parents: tuple = ()):
    """(dotted name, record) of a pickled module and all its submodules, parents first; ``ValueError``
    for a module that contains itself (a pickle can hold such a cycle; a real module tree cannot)."""
    if any(record is parent for parent in parents):
        raise ValueError(f"reference checkpoint: the module {prefix.rstrip('.')} is one of its own parents (a cycle "
                         "in the pickled modules, which torch.save never writes)")
    yield prefix.rstrip("."), record
    children = record.attributes.get("_modules", {})
    if not isinstance(children, dict):
        raise ValueError(f"reference checkpoint: the submodules of {prefix.rstrip('.') or 'the model'} are a "
                         f"{type(children).__name__}, not a dict")
    for name, child in children.items():
        if isinstance(child, Record):
            yield from _modules(child, f"{prefix}{name}.", parents + (record,))


def _parameters(modules: dict[str, Record]) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of the pickled modules, by dotted name (the reference's state dict)."""
    params = {}
    for name, module in modules.items():
        for key in ("_parameters", "_buffers"):
            for pname, tensor in module.attributes.get(key, {}).items():
                if isinstance(tensor, torch.Tensor):
                    params[f"{name}.{pname}" if name else pname] = tensor
    return params


def _expect(modules: dict[str, Record], name: str, global_name: str, **attributes) -> Record:
    """The pickled module ``name``, checked to be a ``global_name`` with the given attribute values."""
    module = modules.get(name)
    if module is None or module.global_name != global_name:
        found = "nothing" if module is None else module.global_name
        raise ValueError(f"reference checkpoint: {name} should be a {global_name}, found {found}")
    for key, value in attributes.items():
        if module.attributes.get(key) != value:
            raise ValueError(f"reference checkpoint: {name}.{key} is {module.attributes.get(key)!r}; "
                             f"only {value!r} has an mtm counterpart")
    return module


def _take_linear(params: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove a reference Linear's weight (out, in) and bias (out,) from ``params`` (zeros if it had none)."""
    weight = params.pop(f"{name}.weight")
    bias = params.pop(f"{name}.bias", None)
    return weight, torch.zeros(weight.shape[0]) if bias is None else bias


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans, start = [], values[0]
    for prev, cur in zip(values, values[1:] + [None]):
        if cur != prev + 1:
            spans.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = cur
    return ", ".join(spans)


def _reference_ndt1(path, obj) -> dict[str, Record]:
    """The pickled modules of a reference NDT1 by dotted name, after checking every setting mtm must match."""
    root = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(root, Record):
        raise ValueError(f"{path}: not a reference checkpoint (expected a pickled {{'model': module, ...}}, "
                         f"found {type(obj).__name__})")
    if root.global_name.startswith(("models.stpatch.", "models.ndt2.")):
        raise ValueError(f"{path}: an NDT2 checkpoint ({root.global_name}), not imported: the reference's NDT2 "
                         f"fills the last partial patch with the tail of the previous one and tiles a time-only "
                         f"causal mask over space-time tokens (reference notes 2.4), so mtm's NDT2 would compute "
                         f"a different function with the same weights")
    if root.global_name != "models.ndt1.NDT1":
        raise ValueError(f"{path}: not a reference NDT1 checkpoint (its model is a {root.global_name})")
    if root.attributes.get("method") != "ssl":
        raise ValueError(f"{path}: a {root.attributes.get('method')!r} model; only self-supervised ('ssl') "
                         f"NDT1 checkpoints map onto mtm")
    modules = dict(_modules(root))
    _expect(modules, "encoder.embedder", "models.ndt1.NeuralEmbeddingLayer", adapt=False, stack=False,
            tokenize_binary_mask=False, pos=True)
    _expect(modules, "encoder.embedder.embed_spikes", "torch.nn.modules.linear.Linear")
    _expect(modules, "encoder.embedder.act", "torch.nn.modules.activation.Softsign")
    _expect(modules, "encoder.out_proj.proj", "torch.nn.modules.linear.Identity")
    _expect(modules, "encoder.out_norm", "torch.nn.modules.normalization.LayerNorm", eps=1e-5)
    layers = _expect(modules, "encoder.layers", "torch.nn.modules.container.ModuleList")
    for i in range(len(layers.attributes.get("_modules", {}))):
        _expect(modules, f"encoder.layers.{i}", "models.ndt1.NeuralEncoderLayer", use_rope=False)
        _expect(modules, f"encoder.layers.{i}.attn", "models.ndt1.NeuralAttention")
        for norm in ("ln1", "ln2"):
            _expect(modules, f"encoder.layers.{i}.{norm}", "torch.nn.modules.normalization.LayerNorm", eps=1e-5)
        _expect(modules, f"encoder.layers.{i}.mlp.act", "torch.nn.modules.activation.GELU", approximate="none")
    return modules


def import_reference(path, sessions: dict[str, int] | None = None, eids: list[str] | None = None,
                     masking: str | None = None) -> tuple[NDT1, ReferenceImport]:
    """An mtm NDT1(-stitch) model holding the weights of a reference ``model_best.pt``, read safely.

    ``sessions``: ``{eid: number of neurons}`` of sessions the checkpoint was trained on, to keep. The
    reference keyed its stitchers by neuron count only, so which session owns which stitcher is the
    caller's to say; each named session gets the stitchers of its count (two sessions with one count
    get copies of the same, as the reference shared them) and its row of the session table. Without
    ``sessions`` the model keeps the shared weights only, enough for ``mtm finetune`` on a new session.
    ``eids``: the session table's eids in row order, needed only when the checkpoint does not record its
    own (``eid_lookup``); the reference's is :func:`mtm.data.target_eids`. ``masking``: how it was
    trained; a prompted checkpoint is ``"mtm"``, an unprompted one must be told (``"temporal"`` for the
    baseline, ``"mtm"`` for MtM without prompts).

    Returns the model (eval mode) and a :class:`ReferenceImport` listing what was dropped.
    """
    obj = read_reference_pickle(path)
    try:
        return _import_ndt1(path, obj, sessions, eids, masking)
    except KeyError as err:  # a module, parameter or attribute every reference NDT1 has
        raise ValueError(f"{path}: not a complete reference NDT1 checkpoint: it lacks {err.args[0]!r}") from None
    except (RuntimeError, IndexError) as err:  # tensors whose sizes do not fit together
        raise ValueError(f"{path}: not a consistent reference NDT1 checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0]})") from None


def _import_ndt1(path, obj, sessions, eids, masking) -> tuple[NDT1, ReferenceImport]:
    """:func:`import_reference` on the unpickled ``obj``; ``KeyError`` for a missing part."""
    modules = _reference_ndt1(path, obj)
    params = _parameters(modules)
    origin = {id(tensor): name for name, tensor in params.items()}  # for messages: the reference's names
    embedder = modules["encoder.embedder"].attributes
    stitching = "encoder.stitcher" in modules
    use_prompt, use_session = "encoder.embedder.embed_prompt" in modules, "encoder.embedder.embed_session" in modules
    if masking is None:
        if not use_prompt:
            raise ValueError(f"{path}: the checkpoint has no prompt tokens; say how it was trained: masking "
                             f"'temporal' (the baseline) or 'mtm' (MtM without prompts)")
        masking = "mtm"
    if use_prompt and masking != "mtm":
        raise ValueError(f"masking: the checkpoint has prompt tokens, which only MtM trains; it cannot have been "
                         f"trained with {masking!r} masking")

    embed_w, embed_b = _take_linear(params, "encoder.embedder.embed_spikes")
    position = params.pop("encoder.embedder.embed_pos.weight")
    width, channels = embed_w.shape
    if width % channels:
        raise ValueError(f"{path}: the embedding {channels} -> {width} is not a whole multiple of its input")
    n_layers = len(modules["encoder.layers"].attributes["_modules"])
    cfg = ModelConfig(arch="ndt1", hidden=position.shape[1], n_layers=n_layers,
                      n_heads=int(modules["encoder.layers.0.attn"].attributes["n_heads"]),
                      mlp=params["encoder.layers.0.mlp.up_proj.weight"].shape[0],
                      dropout=float(modules["encoder.layers.0.attn.dropout"].attributes.get("p", 0.0)),
                      embed_dropout=float(modules["encoder.embedder.dropout"].attributes.get("p", 0.0)),
                      n_channels=channels, stitching=stitching, embed_mult=width // channels,
                      max_bins=position.shape[0], position="learned", use_session=use_session,
                      use_prompt=use_prompt)

    sessions = {str(eid): int(n) for eid, n in (sessions or {}).items()}
    if stitching:
        counts = sorted(int(k) for k in modules["encoder.stitcher.stitcher_dict"].attributes["_modules"])
        missing = {eid: n for eid, n in sessions.items() if n not in counts}
        if missing:
            raise ValueError(f"sessions: no stitcher for {missing}; the checkpoint's stitchers are for {counts} neurons")
    elif list(sessions.values()) != [channels]:
        raise ValueError(f"sessions: a single-session NDT1 checkpoint embeds {channels} neurons; name its one "
                         f"session as {{eid: {channels}}}")
    table_eids = embedder.get("eid_lookup")
    if use_session and sessions:
        if table_eids is None:
            if eids is None:
                raise ValueError(f"{path}: the checkpoint holds no eid table; pass the eids of its session table "
                                 f"in row order (the reference's: mtm.data.target_eids())")
            table_eids = list(eids)
        n_rows = params["encoder.embedder.embed_session.weight"].shape[0]
        if len(table_eids) != n_rows:
            raise ValueError(f"eids: {len(table_eids)} eids for a session table of {n_rows} rows")
        unknown = [eid for eid in sessions if eid not in table_eids]
        if unknown:
            raise ValueError(f"sessions: {unknown[:3]} not in the checkpoint's session table")

    state, notes = {}, []
    if stitching:
        state["embed_hidden.weight"], state["embed_hidden.bias"] = embed_w, embed_b
    projection_w, state["embed_out.bias"] = _take_linear(params, "encoder.embedder.projection")
    state["embed_out.weight"] = projection_w * float(embedder.get("scale", 1))  # act(x) * scale, folded in
    state["position.weight"] = position
    if use_prompt:
        order = list(embedder.get("mask_types", REFERENCE_PROMPT_ORDER))
        table = params.pop("encoder.embedder.embed_prompt.weight")
        state["prompt_token.weight"] = torch.stack([table[order.index(name)] for name in PROMPT_IDS])
    if use_session:
        table = params.pop("encoder.embedder.embed_session.weight")
        rows = [table_eids.index(eid) for eid in sessions]
        state["session_token.weight"] = table[rows]
        unused = sorted(set(range(table.shape[0])) - set(rows))
        if unused:
            notes.append(f"encoder.embedder.embed_session.weight rows {_ranges(unused)} "
                         f"({len(unused)} of {table.shape[0]}, sessions not named)")
    for i in range(n_layers):
        ref, ours = f"encoder.layers.{i}", f"blocks.{i}"
        q, k, v = (_take_linear(params, f"{ref}.attn.{name}") for name in ("query", "key", "value"))
        state[f"{ours}.qkv.weight"] = torch.cat([q[0], k[0], v[0]])
        state[f"{ours}.qkv.bias"] = torch.cat([q[1], k[1], v[1]])
        for theirs, mine in (("attn.out_proj", "out_proj"), ("mlp.up_proj", "up_proj"), ("mlp.down_proj", "down_proj")):
            state[f"{ours}.{mine}.weight"], state[f"{ours}.{mine}.bias"] = _take_linear(params, f"{ref}.{theirs}")
        for norm in ("ln1", "ln2"):
            state[f"{ours}.{norm}.weight"] = params.pop(f"{ref}.{norm}.weight")
            state[f"{ours}.{norm}.bias"] = params.pop(f"{ref}.{norm}.bias")
    state["final_ln.weight"] = params.pop("encoder.out_norm.weight")
    state["final_ln.bias"] = params.pop("encoder.out_norm.bias")
    if stitching:
        read_in = {n: _take_linear(params, f"encoder.stitcher.stitcher_dict.{n}") for n in counts}
        read_out = {n: _take_linear(params, f"stitch_decoder.stitch_decoder_dict.{n}") for n in counts}
    else:
        read_in, read_out = {channels: (embed_w, embed_b)}, {channels: _take_linear(params, "decoder.0")}
    for index, n in enumerate(sessions.values()):
        state[f"read_in.{index}.weight"], state[f"read_in.{index}.bias"] = read_in[n]
        state[f"read_out.{index}.weight"], state[f"read_out.{index}.bias"] = read_out[n]
    unused_counts = sorted(set(read_in) - set(sessions.values()))
    if unused_counts:
        notes.append(f"stitchers encoder.stitcher.stitcher_dict / stitch_decoder.stitch_decoder_dict for "
                     f"{unused_counts} neurons (no session named with that count)")

    model = NDT1(cfg, list(sessions.items()))
    expected = model.state_dict()
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(f"{path}: a tensor of the wrong size: {origin.get(id(tensor), key)} is "
                             f"{tuple(tensor.shape)}, the checkpoint's other sizes give {tuple(expected[key].shape)}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    dropped = [f"{name} {tuple(tensor.shape)}" for name, tensor in params.items()] + notes
    report = ReferenceImport(Path(path).name, obj.get("epoch"), list(sessions.items()), masking, use_prompt, dropped)
    return model.eval(), report


def reference_causal_mask(n_tokens: int, n_prefix: int, period: int, device=None) -> torch.Tensor:
    """The reference code's causal attention mask, boolean (n_prefix + n_tokens, same): a
    (period x period) lower triangle tiled over the tokens, as if token i belonged to bin
    ``i % period``; the rows and columns of the ``n_prefix`` prepended tokens all True (they see
    every bin, the future included), and the diagonal. With one token per bin (NDT1, ``period`` =
    number of bins) only the prepended tokens' rows differ from strict causal attention."""
    i = torch.arange(n_tokens, device=device)
    mask = (i[None, :] % period) <= (i[:, None] % period)
    full = torch.ones(n_prefix + n_tokens, n_prefix + n_tokens, dtype=torch.bool, device=device)
    full[n_prefix:, n_prefix:] = mask
    return full | torch.eye(len(full), dtype=torch.bool, device=device)


@contextlib.contextmanager
def reference_attention(model):
    """Within the block, ``model`` attends in causal mode with :func:`reference_causal_mask`
    instead of its own mask (an instance attribute shadows the method; removed on exit)."""
    model.causal_mask = lambda token_bins, n_prefix, n_bins: reference_causal_mask(
        len(token_bins), n_prefix, n_bins, device=token_bins.device)
    try:
        yield model
    finally:
        del model.causal_mask
