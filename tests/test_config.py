from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tuner.config import DQNConfig, field_docs, field_names, load_config, save_config
from tuner.errors import TunerError

SHIPPED = sorted(Path("studies/configs").glob("*.yaml"))


def test_yaml_round_trip_keeps_every_field(tmp_path):
    config = DQNConfig(hidden_sizes=(32, 16), termination_penalty=-15, dueling=True, n_step=3)
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_unknown_key_names_the_closest_valid_field():
    with pytest.raises(
        TunerError, match=r"unknown field 'learning_rat'.*did you mean 'learning_rate'"
    ):
        DQNConfig.from_dict({"learning_rat": 1e-3})


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("learning_rate", -1.0, "in \\(0, 1\\]"),
        ("gamma", 1.5, "in \\[0, 1\\]"),
        ("batch_size", 0, ">= 1"),
        ("optimizer", "sgd", "adam, adamw, rmsprop"),
        ("hidden_sizes", [], "non-empty"),
        ("grad_clip_norm", 0.0, "or null"),
        ("dueling", "yes", "true or false"),
        ("total_steps", 10.5, "whole number"),
        ("tau", 0.0, "in \\(0, 1\\]"),
        ("amsgrad", True, "adam or adamw"),
        ("recheck_episodes", -5, ">= 0"),
        ("reward_scale", 0.0, "> 0"),
    ],
)
def test_out_of_range_value_names_field_value_and_what_is_allowed(field, value, says):
    extra = {"optimizer": "rmsprop"} if field == "amsgrad" else {}
    with pytest.raises(TunerError, match=says) as err:
        DQNConfig.from_dict({field: value, **extra})
    assert field in str(err.value) and repr(value)[:6] in str(err.value)


def test_yaml_style_numbers_are_accepted():
    config = DQNConfig.from_dict(
        {"total_steps": "1e5", "replay_size": 1e5, "learning_rate": "3e-4", "hidden_sizes": 64}
    )
    assert (config.total_steps, config.replay_size) == (100_000, 100_000)
    assert config.learning_rate == 3e-4 and config.hidden_sizes == (64,)


def test_config_is_frozen_and_replace_validates():
    config = DQNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gamma = 0.5  # type: ignore[misc]
    assert config.replace(gamma=0.5).gamma == 0.5
    with pytest.raises(TunerError, match="gamma"):
        config.replace(gamma=2)


def test_malformed_yaml_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: CartPole-v1\nbatch_size: [64\n")
    with pytest.raises(TunerError, match="not valid YAML at line"):
        load_config(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(TunerError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(TunerError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


def test_every_field_has_a_docstring():
    assert set(field_docs()) == set(field_names())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    assert load_config(path).env == ("Acrobot-v1" if "acrobot" in path.name else "CartPole-v1")


def test_shipped_configs_match_their_sources():
    tutorial = load_config("studies/configs/pytorch_tutorial.yaml")
    assert (tutorial.optimizer, tutorial.amsgrad, tutorial.learning_rate, tutorial.batch_size) == (
        "adamw",
        True,
        1e-4,
        128,
    )
    assert (tutorial.target_update, tutorial.tau, tutorial.grad_clip_value) == ("soft", 0.005, 100)
    assert (tutorial.epsilon_schedule, tutorial.epsilon_decay_steps, tutorial.hidden_sizes) == (
        "exponential",
        1000,
        (128, 128),
    )
    zoo = load_config("studies/configs/rl_zoo_cartpole.yaml")
    assert (zoo.learning_rate, zoo.batch_size, zoo.train_frequency, zoo.gradient_steps) == (
        2.3e-3,
        64,
        256,
        128,
    )
    assert (
        zoo.target_update_interval,
        zoo.epsilon_end,
        zoo.epsilon_decay_steps,
        zoo.hidden_sizes,
    ) == (10, 0.04, 8000, (256, 256))
    acrobot = load_config("studies/configs/rl_zoo_acrobot.yaml")
    assert (acrobot.learning_rate, acrobot.batch_size, acrobot.replay_size) == (6.3e-4, 128, 50000)
    assert (acrobot.learning_starts, acrobot.train_frequency, acrobot.gradient_steps) == (0, 4, 4)
    assert (acrobot.target_update_interval, acrobot.epsilon_end, acrobot.epsilon_decay_steps) == (
        250,
        0.1,
        12000,  # exploration_fraction 0.12 of 100k steps
    )
    assert (acrobot.hidden_sizes, acrobot.grad_clip_norm, acrobot.total_steps) == (
        (256, 256),
        10.0,
        100000,
    )
