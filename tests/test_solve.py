"""A real CartPole-v1 solve: the trainer must reproduce what a verified config is known to do.

studies/configs/cartpole_tuned.yaml (an earlier default study's pick, 20k steps) scored 499.5 or
more (greedy, 100 episodes) on each of 10 seeds on the CI machine, but only 5 of seeds
5,000,000-5,000,009 (benchmarks/results/gamma_drift_tuned.txt): the test checks that the
trainer learns on seeds it is known to solve, not that the config is robust. Training is
deterministic on one machine, so a change that breaks learning fails this test. Float results
differ between CPUs, so a config that is only lucky fails on another machine:
cartpole_known_good.yaml scored 500 on seeds 0-11 on one machine and 428.5, 321.6 and 500 on
seeds 0-2 on the next.
"""

from __future__ import annotations

import pytest

from tuner.config import load_config
from tuner.dqn import evaluate, train


@pytest.mark.slow
def test_tuned_config_solves_cartpole_on_its_first_three_seeds():
    config = load_config("studies/configs/cartpole_tuned.yaml")
    result = train(config, seeds=3, device="cpu")
    returns = evaluate(result.network, config.env, 100).mean(1)
    assert result.env_steps == 20_000 and result.eval_returns.shape == (5, 3)
    assert (returns >= 475).all(), f"greedy returns over 100 episodes per seed: {returns}"
