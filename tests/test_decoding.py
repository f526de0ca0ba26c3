import numpy as np
import pytest

from mtm.data import Session, synthetic_session
from mtm.decoding import decode_behavior, decode_choice, decode_continuous


def test_choice_decoder_recovers_a_known_relation():
    rng = np.random.default_rng(0)
    choice = rng.choice([-1, 1], 200)
    pattern = rng.normal(size=30)
    features = choice[:, None] * pattern[None] * 0.5 + rng.normal(size=(200, 30))
    accuracy = decode_choice(features, choice, np.arange(150), np.arange(150, 200))
    assert accuracy > 0.9
    shuffled = decode_choice(rng.normal(size=(200, 30)), choice, np.arange(150), np.arange(150, 200))
    assert shuffled < 0.75


def test_continuous_decoder_recovers_a_known_relation_with_pooled_r2():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(120, 40))
    target = features @ rng.normal(size=(40, 10)) * 0.3 + 0.1 * rng.normal(size=(120, 10))
    r2 = decode_continuous(features, target, np.arange(90), np.arange(90, 120))
    assert r2 > 0.9
    assert decode_continuous(rng.normal(size=(120, 40)), target, np.arange(90), np.arange(90, 120)) < 0.2


def test_trials_with_missing_behaviour_are_left_out():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(100, 20))
    target = features[:, :5] * 1.0
    target[3, 2] = np.nan
    assert decode_continuous(features, target, np.arange(80), np.arange(80, 100)) > 0.9


def test_behaviour_is_decodable_from_synthetic_spikes():
    session = synthetic_session(4, n_trials=240, n_neurons=80)
    scores = decode_behavior(session, ("choice", "whisker_me", "wheel_speed"))
    assert scores["choice"] > 0.6  # choice drives lateralised movement activity
    assert scores["wheel_speed"] > 0.2 and scores["whisker_me"] > 0.1


def test_bad_decoding_inputs():
    session = synthetic_session(4, n_trials=40, n_neurons=30)
    with pytest.raises(ValueError, match="has no \\['pupil'\\]"):
        decode_behavior(session, ("pupil",))
    no_test = session.replace(splits={"train": np.arange(40)})
    with pytest.raises(ValueError, match="no trials in its 'test' split"):
        decode_behavior(no_test, ("choice",))
    one_choice = Session("x", session.spikes, session.regions, behavior={"choice": np.ones(40, int)})
    with pytest.raises(ValueError, match="single choice"):
        decode_behavior(one_choice, ("choice",))
    with pytest.raises(ValueError, match="trials of behaviour"):
        decode_choice(np.ones((10, 3)), np.ones(9), np.arange(8), np.arange(8, 9))
    with pytest.raises(ValueError, match="per-bin"):
        decode_continuous(np.ones((20, 3)), np.ones(20), np.arange(15), np.arange(15, 20))


def test_row_space_fit_is_the_same_model():
    """Fitting in the trials' row space (F >> K) gives the same L2 logistic and ridge predictions."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from mtm.decoding import row_space

    rng = np.random.default_rng(3)
    x_fit, x_test = rng.normal(size=(60, 400)), rng.normal(size=(10, 400))
    labels = (x_fit[:, 0] + rng.normal(size=60) > 0).astype(int)
    z_fit, z_test = row_space(x_fit, x_test)
    assert z_fit.shape == (60, 59)  # standardised rows span K - 1 dimensions
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    full = LogisticRegression(C=0.05, tol=1e-10, max_iter=10_000).fit((x_fit - mean) / std, labels)
    small = LogisticRegression(C=0.05, tol=1e-10, max_iter=10_000).fit(z_fit, labels)
    np.testing.assert_allclose(full.decision_function((x_test - mean) / std), small.decision_function(z_test),
                               atol=1e-6)
    target = rng.normal(size=(60, 5))
    np.testing.assert_allclose(Ridge(alpha=10).fit((x_fit - mean) / std, target).predict((x_test - mean) / std),
                               Ridge(alpha=10).fit(z_fit, target).predict(z_test), atol=1e-8)


def test_whisker_me_uses_causal_attention_for_every_model_as_the_reference():
    import torch

    from mtm.data import synthetic_session
    from mtm.decoding import decode_behavior
    from mtm.models import ModelConfig

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.cfg = ModelConfig(use_prompt=False)
            self.causal = []

        def forward(self, x, session, prompt=None, causal=False):
            self.causal.append(causal)
            return torch.log(x + 0.5)

    session = synthetic_session(1, n_trials=40, n_neurons=15)
    model = Recorder()
    decode_behavior(session, ["whisker_me"], model=model, training_masking="temporal")
    assert set(model.causal) == {True}
    model.causal.clear()
    decode_behavior(session, ["whisker_me", "choice"], model=model, training_masking="temporal", attention="trained")
    assert set(model.causal) == {False}
    model.causal.clear()
    decode_behavior(session, ["choice"], model=model, training_masking="temporal", prompt="causal")
    assert set(model.causal) == {True}
    with pytest.raises(ValueError, match="attention: expected"):
        decode_behavior(session, ["whisker_me"], model=model, training_masking="temporal", attention="both")
