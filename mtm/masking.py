"""Every masking scheme of MtM, as pure functions on tensors (reference notes section 3).

A masking scheme hides part of a batch of spike counts (B trials, T bins, N neurons) by setting it
to zero, and says which hidden entries the model is scored on (the *targets*). One entry point:

>>> import torch
>>> spikes = torch.poisson(torch.full((16, 100, 40), 0.1))
>>> regions = ["VISa"] * 20 + ["LP"] * 20
>>> masked, target = mask_batch(spikes, "inter-region", regions, generator=torch.Generator().manual_seed(0))
>>> bool((masked[target] == 0).all()), int(target.sum()) == 16 * 100 * 20
(True, True)

=================  =================================================  ==========================
scheme             what is hidden (Bernoulli draws)                    targets
=================  =================================================  ==========================
``temporal``       whole bins, p = ratio per (trial, bin)              the hidden entries
``causal``         as temporal with p = 0.6, and the model attends     the hidden entries
                   only to the past (:func:`is_causal`)
``neuron``         whole neuron traces, p = ratio per (trial, neuron)  the hidden entries
``random``         single entries, p = ratio per (trial, bin, neuron)  the hidden entries
``random-token``   NDT2 tokens (1 bin x ``patch_size`` neurons),       the hidden entries
                   p = ratio per (trial, bin, patch)
``inter-region``   every neuron of one region drawn uniformly from     the hidden entries
                   the batch's regions, all trials and bins
``intra-region``   every neuron outside one drawn region, and within   hidden entries inside the
                   it p = ratio per (trial, neuron)                     drawn region
``co-smooth``      fixed held-out neurons (``heldout``: indices, or     the hidden entries
                   a (N,) or (B, N) boolean mask)
``forward-pred``   fixed held-out bins (``heldout``: indices or a       the hidden entries
                   (T,) mask; default the last 10 bins)
=================  =================================================  ==========================

Default ratios are the reference's: 0.3, and 0.6 for causal. In training (:func:`training_ratio`) the
0.6 of causal applies inside the MtM mixture only; the single-scheme causal ablation masks at the
config's 0.3, as the reference's single-scheme configs do (notes 3.4). Every hidden entry is zeroed (the
reference's ``zero_ratio`` is 1 in every configuration). Regions are those of the batch's own
session: the reference froze the first batch's region list for the whole run (a bug fixed upstream
after the paper, notes section 7.4), which left later sessions of a multi-session run with regions
that matched no neuron. Here every call uses the ``regions`` it is given.

The MtM mixture (:class:`MtMSampler`) draws one of neuron / causal / intra-region / inter-region per
batch, uniformly, and gives its prompt id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

SCHEMES = ("temporal", "causal", "neuron", "random", "random-token", "inter-region", "intra-region",
           "co-smooth", "forward-pred")
TRAINING_SCHEMES = SCHEMES[:7]
REGION_SCHEMES = ("inter-region", "intra-region")
DEFAULT_RATIO = {"temporal": 0.3, "causal": 0.6, "neuron": 0.3, "random": 0.3, "random-token": 0.3,
                 "intra-region": 0.3}
#: The MtM mixture, and the prompt token of each scheme (the reference's vocabulary order).
MTM_SCHEMES = ("neuron", "causal", "intra-region", "inter-region")
PROMPT_IDS = {"neuron": 0, "causal": 1, "inter-region": 2, "intra-region": 3}
FORWARD_PRED_BINS = 10
SINGLE_SCHEME_RATIO = 0.3


def training_ratio(scheme: str, masking: str, ratio: float | None = None) -> float | None:
    """The masking probability of a training batch masked with ``scheme`` in a run of ``masking``
    (``mtm`` or a single scheme), given the run's ``ratio`` (None: the default).

    Inside MtM, causal always masks at 0.6 and the other schemes at ``ratio`` (default 0.3; unused by
    inter-region). A single scheme masks at ``ratio``, default 0.3 for every scheme, causal included.
    """
    check_scheme(scheme)
    if masking == "mtm" and scheme == "causal":
        return DEFAULT_RATIO["causal"]
    if ratio is not None:
        return ratio
    return SINGLE_SCHEME_RATIO if scheme == "causal" else DEFAULT_RATIO.get(scheme)


def causal_gaps(hidden_bins) -> tuple[np.ndarray, int]:
    """How far back a causal target's most recent visible bin lies.

    ``hidden_bins``: (B, T) bool, the bins a causal mask hides (every neuron of a hidden bin is a
    target). Returns (gaps, no_past): for every hidden bin with a visible bin before it in its trial,
    the number of bins back to the most recent one (1: the bin just before is visible, a next-step
    prediction), and the number of hidden bins with no visible bin before them at all.

    >>> causal_gaps(np.array([[False, True, True, False, True], [True, False, True, True, True]]))
    (array([1, 2, 1, 1, 2, 3]), 1)
    """
    hidden = np.asarray(hidden_bins, dtype=bool)
    if hidden.ndim != 2:
        raise ValueError(f"hidden_bins: expected a (trials, bins) array, got shape {hidden.shape}")
    t = np.arange(hidden.shape[1])
    last_visible = np.maximum.accumulate(np.where(hidden, -1, t), axis=1)
    gap = np.broadcast_to(t, hidden.shape) - last_visible
    return gap[hidden & (last_visible >= 0)], int((hidden & (last_visible < 0)).sum())


def is_causal(scheme: str) -> bool:
    """Whether a scheme asks the model to attend only to the past (``causal`` and ``forward-pred``)."""
    check_scheme(scheme)
    return scheme in ("causal", "forward-pred")


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: unknown masking scheme {scheme!r}; expected one of {SCHEMES}")
    return scheme


@dataclass(frozen=True)
class RegionIndex:
    """The regions of one session as integer ids: ``ids`` (N,) long in [0, R), ``names`` (R,).

    Build it once per session (:meth:`from_labels`) and keep it on the training device, so masking
    never copies labels to the accelerator inside a training step.
    """

    ids: torch.Tensor
    names: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels, device=None) -> RegionIndex:
        """Ids in order of first appearance along the neuron axis."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.dtype.kind not in "UO":
            raise ValueError(f"regions: expected one region label (str) per neuron, got {labels.dtype} "
                             f"of shape {labels.shape}")
        names, first, inverse = np.unique(labels.astype(str), return_index=True, return_inverse=True)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return cls(torch.as_tensor(rank[inverse], dtype=torch.long, device=device),
                   tuple(str(n) for n in names[order]))

    def to(self, device) -> RegionIndex:
        return RegionIndex(self.ids.to(device), self.names)

    def __len__(self) -> int:
        return len(self.names)


def _heldout_mask(heldout, size: int, device, default: Sequence[int] | None, field: str) -> torch.Tensor:
    if heldout is None:
        if default is None:
            raise ValueError(f"heldout: the {field} scheme needs the held-out indices or mask")
        heldout = default
    heldout = torch.as_tensor(heldout, device=device)
    if heldout.dtype == torch.bool:
        if heldout.shape[-1] != size:
            raise ValueError(f"heldout: expected a boolean mask over {size} {field}, got shape {tuple(heldout.shape)}")
        return heldout
    if heldout.ndim != 1 or (heldout.numel() and (heldout.min() < 0 or heldout.max() >= size)):
        raise ValueError(f"heldout: expected indices in [0, {size}) of the {field}")
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    mask[heldout.long()] = True
    return mask


def mask_batch(spikes: torch.Tensor, scheme: str, regions=None, ratio: float | None = None,
               generator: torch.Generator | None = None, *, heldout=None,
               patch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a batch of spike counts with one scheme (see the module docstring for each scheme).

    Parameters
    ----------
    spikes
        (B, T, N) counts, any dtype, on any device. Not modified.
    scheme
        One of :data:`SCHEMES`.
    regions
        (N,) region label per neuron of the batch's session, or its :class:`RegionIndex`; needed
        by the region schemes, which raise ``ValueError`` for fewer than two regions.
    ratio
        Masking probability; default :data:`DEFAULT_RATIO` of the scheme.
    generator
        ``torch.Generator`` on ``spikes.device`` for reproducible draws (default: the global one).
    heldout
        The fixed held-out neurons (``co-smooth``) or bins (``forward-pred``).
    patch_size
        Neurons per NDT2 token, for ``random-token``.

    Returns
    -------
    masked : (B, T, N) tensor like ``spikes`` (int64 for uint16 / uint32 counts), zero where hidden.
    target : (B, T, N) bool, the entries the loss and the metrics are computed on.

    Every draw happens on ``spikes.device`` and nothing reads a value back to the host, so masking
    adds no host-device synchronisation to a GPU training step.
    """
    check_scheme(scheme)
    if spikes.ndim != 3:
        raise ValueError("spikes: expected a (trials, bins, neurons) tensor, "
                         f"got shape {tuple(spikes.shape)}")
    # torch cannot mask these types (counts above 255)
    if spikes.dtype in (torch.uint16, torch.uint32, torch.uint64):
        spikes = spikes.to(torch.int64)
    n_trials, n_bins, n_neurons = batch_shape = spikes.shape
    device = spikes.device
    if ratio is None:
        ratio = DEFAULT_RATIO.get(scheme)
    elif not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio: expected a probability in [0, 1], "
                         f"got {ratio}")

    def bernoulli(*shape) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device) < ratio

    if scheme in ("temporal", "causal"):
        hidden = bernoulli(n_trials, n_bins, 1).expand(batch_shape)
    elif scheme == "neuron":
        hidden = bernoulli(n_trials, 1, n_neurons).expand(batch_shape)
    elif scheme == "random":
        hidden = bernoulli(n_trials, n_bins, n_neurons)
    elif scheme == "random-token":
        n_patches = math.ceil(n_neurons / patch_size)
        hidden = bernoulli(n_trials, n_bins, n_patches)
        hidden = hidden.repeat_interleave(patch_size, dim=2)[..., :n_neurons]
    elif scheme == "co-smooth":
        held = _heldout_mask(heldout, n_neurons, device, None, "neurons")
        held = held.view(-1 if held.ndim == 2 else 1, 1, n_neurons)
        if held.shape[0] not in (1, n_trials):
            raise ValueError(f"heldout: a per-trial mask needs {n_trials} "
                             f"rows, got {held.shape[0]}")
        hidden = held.expand(batch_shape)
    elif scheme == "forward-pred":
        if heldout is None and n_bins <= FORWARD_PRED_BINS:
            raise ValueError(f"spikes: forward-pred hides the last "
                             f"{FORWARD_PRED_BINS} bins and needs more than "
                             f"that; the batch has {n_bins} bins")
        last = range(n_bins - FORWARD_PRED_BINS, n_bins)
        held = _heldout_mask(heldout, n_bins, device, last, "bins")
        hidden = held.view(1, n_bins, 1).expand(batch_shape)
    else:
        if regions is None:
            raise ValueError(f"regions: the {scheme} scheme needs the region "
                             "of every neuron")
        index = regions
        if not isinstance(regions, RegionIndex):
            index = RegionIndex.from_labels(regions, device)
        if index.ids.shape != (n_neurons,):
            raise ValueError(f"regions: expected one region per neuron "
                             f"({n_neurons}), got {tuple(index.ids.shape)}")
        if len(index) < 2:
            raise ValueError(f"regions: the {scheme} scheme needs at least "
                             f"two regions, the session has "
                             f"{list(index.names)}")
        chosen = torch.randint(len(index), (1,), generator=generator,
                               device=device)
        inside = (index.ids.to(device) == chosen).view(1, 1, n_neurons)
        if scheme == "inter-region":
            hidden = inside.expand(batch_shape)
        else:
            drawn = bernoulli(n_trials, 1, n_neurons) & inside
            hidden = (~inside | drawn).expand(batch_shape)
            target = (hidden & inside).contiguous()
            return spikes.masked_fill(hidden, 0), target
    return spikes.masked_fill(hidden, 0), hidden.contiguous()


class MtMSampler:
    """Draws the masking scheme of each batch, uniformly, and its prompt id (paper eq. 1).

    >>> sampler = MtMSampler(seed=0)
    >>> [sampler.sample() for _ in range(3)]  # doctest: +SKIP
    [('causal', 1), ('neuron', 0), ('inter-region', 2)]

    Host-side (Python ``random``), so drawing a scheme never touches the accelerator. A session with
    a single region cannot use the region schemes: :meth:`sample` raises when told so.
    """

    def __init__(self, schemes: Sequence[str] = MTM_SCHEMES, seed: int | None = None):
        for scheme in schemes:
            if scheme not in PROMPT_IDS:
                raise ValueError(f"schemes: {scheme!r} has no prompt; MtM mixes {tuple(PROMPT_IDS)}")
        if not schemes:
            raise ValueError("schemes: expected at least one scheme")
        self.schemes = tuple(schemes)
        self.rng = random.Random(seed)

    def sample(self, n_regions: int | None = None) -> tuple[str, int]:
        regional = any(s in REGION_SCHEMES for s in self.schemes)
        if n_regions is not None and n_regions < 2 and regional:
            raise ValueError("regions: MtM mixes the region schemes, which "
                             "need at least two regions; the session has "
                             f"{n_regions}")
        scheme = self.schemes[self.rng.randrange(len(self.schemes))]
        return scheme, PROMPT_IDS[scheme]
