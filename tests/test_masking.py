import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mtm.masking import (DEFAULT_RATIO, MTM_SCHEMES, PROMPT_IDS, SCHEMES, MtMSampler, RegionIndex, causal_gaps,
                         is_causal, mask_batch)

REGIONS = np.array(["VISa"] * 7 + ["CA1"] * 5 + ["DG"] * 4 + ["LP"] * 6 + ["PO"] * 8)


def batch(n_trials=16, n_bins=100, n_neurons=30, seed=0):
    return torch.poisson(torch.full((n_trials, n_bins, n_neurons), 0.8), generator=torch.Generator().manual_seed(seed))


def gen(seed):
    return torch.Generator().manual_seed(seed)


@settings(max_examples=25, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), seed=st.integers(0, 2**31), trials=st.integers(1, 8),
       bins=st.integers(11, 40))  # forward-pred needs more than its 10 bins
def test_every_scheme_hides_by_zeroing_and_never_touches_the_input(scheme, seed, trials, bins):
    spikes = batch(trials, bins, 30, seed)
    before = spikes.clone()
    heldout = [3, 7] if scheme == "co-smooth" else None
    masked, target = mask_batch(spikes, scheme, REGIONS, generator=gen(seed), heldout=heldout)
    assert torch.equal(spikes, before)  # no input mutation
    assert masked.shape == spikes.shape and masked.dtype == spikes.dtype and target.dtype == torch.bool
    changed = masked != spikes
    assert torch.all(masked[changed] == 0)
    assert torch.all(masked[target] == 0)  # every target is hidden from the model
    again = mask_batch(spikes, scheme, REGIONS, generator=gen(seed), heldout=heldout)
    assert torch.equal(again[0], masked) and torch.equal(again[1], target)  # determinism for a seed


def test_temporal_and_causal_hide_whole_bins_at_their_ratios():
    ones = torch.ones(64, 100, 30)
    for scheme, ratio in (("temporal", 0.3), ("causal", 0.6)):
        masked, target = mask_batch(ones, scheme, generator=gen(1))
        hidden = masked == 0
        assert torch.equal(hidden, target)
        assert torch.all(hidden == hidden[:, :, :1])  # a bin is hidden for every neuron
        fraction = hidden[:, :, 0].float().mean().item()
        assert abs(fraction - ratio) < 4 * math.sqrt(ratio * (1 - ratio) / (64 * 100))
        assert not torch.all(hidden[0] == hidden[1])  # bins drawn per trial
    assert is_causal("causal") and is_causal("forward-pred") and not is_causal("temporal")
    assert DEFAULT_RATIO["causal"] == 0.6


def test_neuron_masking_hides_whole_traces():
    ones = torch.ones(200, 50, 30)
    masked, target = mask_batch(ones, "neuron", generator=gen(2))
    hidden = masked == 0
    assert torch.equal(hidden, target) and torch.all(hidden == hidden[:, :1, :])
    fraction = hidden[:, 0].float().mean().item()
    assert abs(fraction - 0.3) < 4 * math.sqrt(0.21 / 6000)


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.6])
def test_random_masking_ratio(ratio):
    masked, target = mask_batch(torch.ones(20, 100, 30), "random", ratio=ratio, generator=gen(3))
    fraction = target.float().mean().item()
    assert abs(fraction - ratio) < 4 * math.sqrt(ratio * (1 - ratio) / 60000)


def test_random_token_hides_whole_patches():
    ones = torch.ones(8, 100, 70)
    masked, target = mask_batch(ones, "random-token", generator=gen(4), patch_size=32)
    hidden = masked == 0
    for start in (0, 32, 64):
        patch = hidden[:, :, start:start + 32]
        assert torch.all(patch == patch[:, :, :1])
    assert not torch.all(hidden[:, :, :1] == hidden[:, :, 32:33])  # patches drawn separately


def test_inter_region_hides_one_whole_region_drawn_uniformly():
    ones = torch.ones(4, 20, len(REGIONS))
    chosen = []
    for seed in range(400):
        masked, target = mask_batch(ones, "inter-region", REGIONS, generator=gen(seed))
        hidden = (masked == 0)[0, 0].numpy()
        assert torch.equal(masked == 0, target)
        assert torch.all(target == target[:1, :1])  # all trials and bins
        regions_hidden = set(REGIONS[hidden])
        assert len(regions_hidden) == 1 and np.array_equal(hidden, REGIONS == regions_hidden.pop())
        chosen.append(REGIONS[hidden][0])
    _, counts = np.unique(chosen, return_counts=True)
    assert len(counts) == 5 and stats.chisquare(counts).pvalue > 1e-3


def test_intra_region_hides_other_regions_and_targets_a_fraction_inside():
    ones = torch.ones(300, 10, len(REGIONS))
    masked, target = mask_batch(ones, "intra-region", REGIONS, generator=gen(5))
    hidden = masked == 0
    region_of_target = set(REGIONS[target.any(dim=(0, 1)).numpy()])
    assert len(region_of_target) == 1
    inside = torch.as_tensor(REGIONS == region_of_target.pop())
    assert torch.all(hidden[:, :, ~inside])  # every other region hidden, never a target
    assert not target[:, :, ~inside].any()
    assert torch.equal(target, hidden & inside)
    fraction = hidden[:, 0, inside].float().mean().item()
    n = 300 * int(inside.sum())
    assert abs(fraction - 0.3) < 4 * math.sqrt(0.21 / n)


def test_fixed_evaluation_masks():
    spikes = batch(4, 100, 30)
    masked, target = mask_batch(spikes, "co-smooth", heldout=[2, 5])
    assert torch.equal(target.any(dim=(0, 1)).nonzero().ravel(), torch.tensor([2, 5]))
    assert torch.all(target[:, :, [2, 5]])
    per_trial = torch.zeros(4, 30, dtype=torch.bool)
    per_trial[torch.arange(4), torch.tensor([0, 1, 2, 3])] = True
    _, target = mask_batch(spikes, "co-smooth", heldout=per_trial)
    assert torch.equal(target[:, 0, :], per_trial)
    masked, target = mask_batch(spikes, "forward-pred")
    assert torch.equal(target[0, :, 0].nonzero().ravel(), torch.arange(90, 100))
    assert torch.all(masked[:, 90:] == 0) and torch.equal(masked[:, :90], spikes[:, :90])


def test_region_index_and_batches_on_the_region_list_they_are_given():
    index = RegionIndex.from_labels(["LP", "CA1", "LP", "PO"])
    assert index.names == ("LP", "CA1", "PO") and index.ids.tolist() == [0, 1, 0, 2]
    # a second session with other regions: its own regions are used, not the first batch's
    other = np.array(["SCm"] * 10 + ["MRN"] * 10)
    _, target = mask_batch(torch.ones(2, 5, 20), "inter-region", other, generator=gen(0))
    assert target[0, 0].sum() == 10


def test_mtm_sampler_is_uniform_and_gives_prompts():
    sampler = MtMSampler(seed=0)
    draws = [sampler.sample(5) for _ in range(4000)]
    assert all(PROMPT_IDS[s] == p for s, p in draws)
    _, counts = np.unique([s for s, _ in draws], return_counts=True)
    assert len(counts) == len(MTM_SCHEMES) and stats.chisquare(counts).pvalue > 1e-3
    first, second = MtMSampler(seed=3), MtMSampler(seed=3)
    assert [first.sample() for _ in range(20)] == [second.sample() for _ in range(20)]
    assert PROMPT_IDS == {"neuron": 0, "causal": 1, "inter-region": 2, "intra-region": 3}


@pytest.mark.parametrize("kwargs, message", [
    (dict(scheme="spatial"), "unknown masking scheme"),
    (dict(scheme="inter-region", regions=None), "needs the region of every neuron"),
    (dict(scheme="intra-region", regions=["CA1"] * 30), "at least two regions"),
    (dict(scheme="inter-region", regions=["CA1", "LP"] * 10), "one region per neuron"),
    (dict(scheme="temporal", ratio=1.5), "ratio"),
    (dict(scheme="co-smooth"), "heldout"),
    (dict(scheme="co-smooth", heldout=[40]), "heldout"),
])
def test_bad_masking_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_batch(batch(2, 10, 30), **{"regions": REGIONS, **kwargs})
    with pytest.raises(ValueError, match="at least two regions"):
        MtMSampler().sample(n_regions=1)
    with pytest.raises(ValueError, match="no prompt"):
        MtMSampler(schemes=("temporal",))


def test_training_ratio_single_causal_at_the_config_ratio_and_mtm_causal_at_0_6():
    from mtm.masking import training_ratio

    assert training_ratio("causal", "causal") == 0.3  # the single-scheme ablation (reference notes 3.4)
    assert training_ratio("causal", "mtm") == 0.6 and training_ratio("causal", "mtm", 0.1) == 0.6
    assert training_ratio("neuron", "mtm") == 0.3 and training_ratio("neuron", "mtm", 0.1) == 0.1
    assert training_ratio("temporal", "temporal", 0.6) == 0.6 and training_ratio("intra-region", "intra-region") == 0.3


def test_a_single_causal_run_masks_three_tenths_of_its_bins(tmp_path):
    from mtm.data import synthetic_session
    from mtm.models import build_model
    from mtm.train import TrainConfig, Trainer, forward_loss

    session = synthetic_session(0, n_trials=64, n_neurons=15)
    for masking, scheme, ratio in (("causal", "causal", 0.3), ("mtm", "causal", 0.6)):
        cfg = TrainConfig.preset("small", masking=masking, epochs=1, device="cpu",
                                 model=dict(hidden=16, n_layers=1, n_heads=2, mlp=16, n_channels=16))
        model = build_model(cfg.model, [(session.eid, session.n_neurons)])
        trainer = Trainer(model, [session], cfg, tmp_path / masking)
        data = trainer.data[0]
        prompt = PROMPT_IDS[scheme] if cfg.uses_prompts else None
        *_, target = forward_loss(trainer.net, data.spikes, data.regions, data.index, scheme, prompt, cfg,
                                  torch.Generator().manual_seed(0))
        assert abs(float(target[:, :, 0].float().mean()) - ratio) < 0.03, masking


def test_causal_gaps_count_bins_back_to_the_last_visible_one():
    hidden = np.array([[False, True, True, False, True], [True, False, True, True, True]])
    gaps, no_past = causal_gaps(hidden)
    assert gaps.tolist() == [1, 2, 1, 1, 2, 3] and no_past == 1
    # bins hidden independently with probability p: the gap follows the geometric law (1 - p) p^(k-1)
    p = 0.6
    gaps, no_past = causal_gaps(np.random.default_rng(0).random((4000, 100)) < p)
    for k in (1, 2, 3):
        assert abs(np.mean(gaps == k) - (1 - p) * p ** (k - 1)) < 0.01
    with pytest.raises(ValueError, match="hidden_bins"):
        causal_gaps(np.zeros(5, dtype=bool))
