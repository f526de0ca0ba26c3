import pytest
import torch

from mtm.models import NDT1, NDT2, ModelConfig, build_model, poisson_nll

TINY = dict(hidden=32, n_layers=2, n_heads=4, mlp=64, n_channels=24, patch_size=8, max_bins=20)


def tiny(arch="ndt1", sessions=(("a", 20), ("b", 20)), **overrides):
    torch.manual_seed(0)
    return build_model(ModelConfig(arch=arch, **{**TINY, **overrides}), list(sessions)).eval()


def counts(n_trials=3, n_bins=20, n_neurons=20, seed=0):
    return torch.poisson(torch.full((n_trials, n_bins, n_neurons), 0.7), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch, overrides", [
    ("ndt1", {}), ("ndt1", {"position": "rope"}), ("ndt1", {"stitching": False}),
    ("ndt2", {}), ("ndt2", {"position": "rope"}), ("ndt2", {"patch_size": 32}),
])
def test_causal_mode_never_sees_a_future_bin(arch, overrides):
    """Changing bin t0 changes no output at bins < t0, session and prompt tokens included."""
    model = tiny(arch, **overrides)
    x = counts()
    for t0 in (0, 7, 19):
        changed = x.clone()
        changed[:, t0:] += 3.0
        with torch.no_grad():
            before = model(x, "a", prompt=1, causal=True)
            after = model(changed, "a", prompt=1, causal=True)
        assert torch.allclose(before[:, :t0], after[:, :t0], atol=1e-5), (arch, t0)
        assert not torch.allclose(before[:, t0:], after[:, t0:], atol=1e-4)
    with torch.no_grad():  # bidirectional attention does see the future
        assert not torch.allclose(model(x, "a", 1)[:, :7], model(changed, "a", 1)[:, :7], atol=1e-4)


def test_attention_needs_a_dense_mask_only_for_ndt2_with_several_patches():
    bins = torch.arange(20)
    assert tiny("ndt1").causal_mask(bins, 2, 20) is None
    one_patch = tiny("ndt2", patch_size=32)
    assert one_patch.causal_mask(bins, 2, 20) is None
    several = tiny("ndt2")  # 20 neurons in patches of 8: 3 tokens per bin
    mask = several.causal_mask(bins.repeat_interleave(3), 2, 20)
    assert mask.shape == (62, 62)
    assert mask[:2, :2].all() and not mask[:2, 2:].any()  # prefix tokens see no bin
    assert mask[2, 2:5].all() and not mask[2, 5:].any()  # a token sees its own bin's patches, not the next


def test_outputs_are_log_rates_per_session():
    model = tiny()
    x = counts()
    with torch.no_grad():
        a, b = model(x, "a", prompt=0), model(x, "b", prompt=0)
    assert a.shape == (3, 20, 20)
    assert not torch.allclose(a, b)  # same neuron count, different stitchers: keyed by session id
    assert len(model.read_in) == 2 and model.session_ids == ["a", "b"]
    loss, n = poisson_nll(a, x, torch.ones_like(x, dtype=torch.bool))
    assert n == x.numel()
    assert torch.isclose(loss, (a.exp() - x * a).sum())


@pytest.mark.parametrize("arch", ["ndt1", "ndt2"])
def test_selected_log_rates_are_those_of_the_full_read_out(arch):
    model, x = tiny(arch), counts(n_trials=4)
    rows, neurons = torch.tensor([0, 0, 3, 2, 3]), torch.tensor([5, 19, 0, 5, 5])
    with torch.no_grad():
        full = model(x, "b", prompt=2)
        torch.testing.assert_close(model(x, "b", prompt=2, select=(rows, neurons)), full[rows, :, neurons])


@pytest.mark.parametrize("arch", ["ndt1", "ndt2"])
def test_hiding_neurons_equals_zeroing_them(arch):
    """``hide`` gives what the zeroed batch gives, whether one neuron, most neurons or none are hidden."""
    model, x = tiny(arch), counts(n_trials=3)
    x[1, :, 4] = 0  # a silent neuron
    rows = torch.tensor([0, 0, 2, 1, 1, 2, 0])
    hidden = torch.zeros(7, 20, dtype=torch.bool)
    hidden[0, 3] = hidden[3, 4] = True  # one neuron (one of them silent)
    hidden[1, 2:] = hidden[4, 5:] = True  # all but a few: the visible neurons are read in
    hidden[5, ::2] = True  # half: the whole masked batch is read in
    for subset in (slice(0, 5), slice(5, 7), slice(0, 7)):  # NDT1: the neurons' terms; the masked batch
        with torch.no_grad():
            zeroed = model(x[rows[subset]] * ~hidden[subset].unsqueeze(1), "a", prompt=0)
            hid = model(x, "a", prompt=0, hide=(rows[subset], hidden[subset]))
        torch.testing.assert_close(hid, zeroed, rtol=1e-5, atol=1e-5)


def test_paper_sizes_match_the_reference():
    model = build_model(ModelConfig.paper(), [("s", 676)])
    core = sum(p.numel() for p in model.core_parameters())
    assert 11.5e6 < core < 12.5e6  # reference notes 2.1: about 12 M
    stitch = sum(p.numel() for p in model.session_parameters())
    assert 0.7e6 < stitch < 0.9e6  # about 0.45 M in + 0.35 M out
    assert model.blocks[0].qkv.weight.shape == (1536, 512) and model.blocks[0].up_proj.weight.shape == (1024, 512)
    assert len(model.blocks) == 5 and model.cfg.n_heads == 8


def test_fixup_scales_the_residual_branches():
    torch.manual_seed(0)
    plain = NDT1(ModelConfig(fixup=False, **TINY), [("a", 20)])
    torch.manual_seed(0)
    scaled = NDT1(ModelConfig(fixup=True, **TINY), [("a", 20)])
    factor = 0.67 * 2 ** -0.25
    for name in ("out_proj", "up_proj", "down_proj"):
        assert torch.allclose(getattr(scaled.blocks[0], name).weight, getattr(plain.blocks[0], name).weight * factor)
    value = slice(2 * 32, 3 * 32)
    assert torch.allclose(scaled.blocks[1].qkv.weight[value], plain.blocks[1].qkv.weight[value] * factor * 2 ** 0.5)
    assert torch.equal(scaled.blocks[1].qkv.weight[:32], plain.blocks[1].qkv.weight[:32])


def test_adding_a_session_keeps_the_others():
    model = tiny()
    x = counts()
    with torch.no_grad():
        before = model(x, "a", prompt=2)
    index = model.add_session("c", 33)
    assert index == 2 and model.session_token.weight.shape[0] == 3
    assert torch.allclose(model.session_token.weight[2], model.session_token.weight[:2].mean(0))
    with torch.no_grad():
        assert torch.allclose(model(x, "a", prompt=2), before)
        assert model(counts(n_neurons=33), "c", prompt=2).shape == (3, 20, 33)
    ndt2 = tiny("ndt2")
    ndt2.add_session("wide", 50)  # more patches than before: the space embedding grows
    assert ndt2.space.weight.shape[0] == 7


@pytest.mark.parametrize("call, message", [
    (lambda m: m(counts(), "zz", prompt=0), "unknown session id 'zz'"),
    (lambda m: m(counts(n_neurons=21), "a", prompt=0), "expects 20 neurons, the data has 21"),
    (lambda m: m(counts(), "a"), "prompt"),
    (lambda m: m(counts(n_bins=25), "a", prompt=0), "max_bins"),
    (lambda m: m(counts()[0], "a", prompt=0), "trials, bins, neurons"),
    (lambda m: m.add_session("a", 5), "already registered"),
    (lambda m: m.add_session("d", 0), "at least one neuron"),
])
def test_bad_model_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny())


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="ndt3"), "arch"), (dict(position="sinusoid"), "position"), (dict(hidden=30, n_heads=4), "heads"),
])
def test_bad_model_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)
    with pytest.raises(ValueError, match="arch 'ndt2'"):
        NDT2(ModelConfig(arch="ndt1"), [])


def test_bf16_autocast_matches_fp32_within_tolerance():
    model = tiny(sessions=(("a", 20),))
    x = counts()
    target = torch.ones_like(x, dtype=torch.bool)
    with torch.no_grad():
        full, _ = poisson_nll(model(x, "a", prompt=0), x, target)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half, _ = poisson_nll(model(x, "a", prompt=0), x, target)
    assert abs(half.item() - full.item()) / abs(full.item()) < 2e-2


def test_the_session_tokens_of_a_new_multi_session_model_are_drawn_independently():
    torch.manual_seed(0)
    model = build_model(ModelConfig.small(hidden=16, n_heads=2, token_std=None), [("a", 5), ("b", 6), ("c", 7)])
    tokens = model.session_token.weight.detach()
    assert not torch.allclose(tokens[1], tokens[0]) and not torch.allclose(tokens[2], tokens[0])
    assert 0.5 < float(tokens.std()) < 1.5  # N(0, 1), as nn.Embedding draws its rows
    with pytest.raises(ValueError, match="token: expected 'mean' or 'fresh'"):
        model.add_session("d", 3, token="zero")


def test_token_std_sets_the_spread_of_every_learned_token_table():
    """The small preset draws its learned tokens from N(0, 0.02^2); token_std=None keeps nn.Embedding's
    N(0, 1), the reference's; tokens of sessions added later are drawn alike."""
    torch.manual_seed(0)
    sessions = [("a", 5), ("b", 6), ("c", 7)]
    small = build_model(ModelConfig.small(hidden=64, n_heads=4), sessions)
    wide = build_model(ModelConfig.small(hidden=64, n_heads=4, token_std=None), sessions)
    assert small.cfg.token_std == 0.02 and ModelConfig.paper().token_std is None
    for table in ("position", "session_token", "prompt_token"):
        assert 0.015 < float(getattr(small, table).weight.detach().std()) < 0.025
        assert 0.8 < float(getattr(wide, table).weight.detach().std()) < 1.2
    small.add_session("d", 3, token="fresh")
    assert 0.01 < float(small.session_token.weight[3].detach().std()) < 0.03
    ndt2 = build_model(ModelConfig.small(arch="ndt2", hidden=64, n_heads=4, patch_size=4), sessions)
    for table in ("time", "space", "session_token"):
        assert float(getattr(ndt2, table).weight.detach().std()) < 0.03


@pytest.mark.parametrize("value", [0, -0.1, True, float("inf"), "0.02"])
def test_bad_token_std(value):
    with pytest.raises(ValueError, match="token_std: expected a positive standard deviation or None"):
        ModelConfig(token_std=value)
