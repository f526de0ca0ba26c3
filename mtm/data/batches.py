"""Batches of trials: every epoch shuffles the trials of each session's train split, cuts them into
batches of one session each and shuffles the batches of all sessions together, from ``(seed, epoch)``
alone, so an epoch is the same whether a run was resumed before it or not."""

from __future__ import annotations

import numpy as np
import torch


def maskable_counts(spikes: np.ndarray) -> np.ndarray:
    """Counts (K, T, N) in a dtype torch can mask and index: uint8 as it is, wider unsigned
    integers (counts above 255) as int32 or int64."""
    spikes = np.array(spikes)
    if spikes.dtype.kind == "u" and spikes.dtype.itemsize > 1:
        return spikes.astype(np.int32 if spikes.dtype.itemsize == 2 else np.int64)
    return spikes



def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """The seed of one random stream (batch order 0, dropout 1, masks 2, MtM schemes 3, ...) of one
    epoch of a run seeded ``seed``: every epoch is reproducible on its own, so a resumed run repeats it."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2 ** 62)


def epoch_batches(data: list, batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world: int = 1) -> list[tuple[int, torch.Tensor]]:
    """This rank's batches of one epoch: (session position, trial indices), single-session batches.
    ``data``: the sessions, each with ``splits["train"]`` as a tensor of trial indices.

    Every rank draws the same global order from ``(seed, epoch)`` and takes every ``world``-th batch
    (all ranks get the same number of batches).
    """
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
    batches = []
    for pos, st in enumerate(data):
        train = st.splits.get("train", torch.empty(0, dtype=torch.long))
        order = train[torch.randperm(len(train), generator=gen)]
        batches += [(pos, order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    batches = [batches[i] for i in order]
    per_rank = len(batches) // world
    return batches[rank::world][:per_rank]
