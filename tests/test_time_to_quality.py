"""benchmarks/time_to_quality.py: the arithmetic its table rests on (the runs themselves are a benchmark,
not a test): seconds to reach a share, recipes' configurations, and the table written from run records."""

import json
import math

import pytest

from mtm.data import synthetic_session
from mtm.reproduce.plan import batches_per_epoch


@pytest.fixture
def ttq(monkeypatch):
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import time_to_quality
    return time_to_quality


def test_seconds_to_share_interpolates_in_log_seconds(ttq):
    points = [(100.0, 0.4), (400.0, 0.6)]
    assert ttq.seconds_to_share(points, 0.5) == pytest.approx(200.0)   # halfway in log seconds
    assert ttq.seconds_to_share(points, 0.3) == 100.0                  # already there at the first budget
    assert math.isinf(ttq.seconds_to_share(points, 0.7))               # never reached


def test_a_recipe_trains_its_steps_in_whole_epochs_with_its_own_settings(ttq):
    session = synthetic_session(0, 60, 30, preset="small")
    cfg = ttq.recipe_config("lr5e-3-b32", "mtm", 100, session)
    assert cfg.batch_size == 32 and cfg.lr == pytest.approx(5e-3 * math.sqrt(2))
    assert cfg.epochs == max(1, round(100 / batches_per_epoch([session], 32)))
    wide = ttq.recipe_config("w128-lr2e-3", "temporal", 100, session)
    assert (wide.model.hidden, wide.model.mlp, wide.model.n_channels) == (128, 256, 128)
    assert ttq.RECIPES["w128-lr2e-3"] == {"model": {"hidden": 128, "mlp": 256, "n_channels": 128}}  # not edited


def test_the_table_counts_seeds_and_says_when_a_share_is_not_reached(ttq, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "bayes.json").write_text(json.dumps({"co-smooth": 0.5, "forward-pred": 0.4, "intra-region": 0.5,
                                                     "inter-region": 0.5}))
    (tmp_path / "seconds_per_step.json").write_text(json.dumps({"preset-mtm": 0.01}))
    for seed, (low, high) in enumerate([(0.2, 0.3), (0.2, 0.45)]):
        for steps, score in ((1000, low), (4000, high)):
            record = dict(recipe="preset", masking="mtm", steps=steps, seed=seed, epochs=1, train_seconds=1.0,
                          scores={"co-smooth": score})
            (tmp_path / "runs" / f"preset-mtm-s{steps}-seed{seed}.json").write_text(json.dumps(record))
    ttq.write_results(tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "| preset | mtm | 4000 | 40 | 2 | 75 ± " in text          # 0.6 and 0.9 of the reference, 2 seeds
    # 50 %: seed 0 halfway from 10 to 40 s in log seconds (20), seed 1 a fifth of the way (13); 70 and 80 %:
    # seed 1 only (0.9 of the reference at 40 s)
    assert "| preset | mtm | 20 / 13 | > 40 (1/2 seeds reach it) | > 40 (1/2 seeds reach it) |" in text
    assert "preset,mtm,1,4000" in (tmp_path / "runs.csv").read_text()
