"""Gymnasium environments: checking a task fits DQN, training vector envs, seeding."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from tuner.errors import TunerError

EVAL_SEED = 1_000_000
"""Greedy evaluation episode j starts from `reset(seed=EVAL_SEED + j)`, in every run and seed."""


@dataclass(frozen=True)
class EnvInfo:
    obs_dim: int
    n_actions: int
    reward_threshold: float | None
    max_episode_steps: int | None


def make_env(env_id: str) -> gym.Env:
    """One environment, or a TunerError saying why the id cannot be made."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return gym.make(env_id, disable_env_checker=True)
    except (gym.error.Error, ModuleNotFoundError, ImportError, AttributeError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunerError(f"cannot make environment {env_id!r}: {reason}") from None


def check_env(env_id: str) -> EnvInfo:
    """Make the env once and check it has Discrete actions and 1-D Box observations."""
    env = make_env(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(act_space, gym.spaces.Discrete):
            raise TunerError(f"{env_id} has action space {act_space}; DQN needs Discrete actions")
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise TunerError(
                f"{env_id} has observation space {obs_space}; "
                "tuner needs a 1-D Box of vector observations"
            )
        spec = env.spec
        return EnvInfo(
            obs_dim=int(obs_space.shape[0]),
            n_actions=int(act_space.n),
            reward_threshold=spec.reward_threshold if spec else None,
            max_episode_steps=spec.max_episode_steps if spec else None,
        )
    finally:
        env.close()


def stream_seed(*key: int) -> int:
    """A 32-bit seed derived from integers, so distinct uses of one seed never collide."""
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def make_train_envs(
    env_id: str, seeds: list[int], envs_per_seed: int
) -> tuple[SyncVectorEnv, np.ndarray]:
    """K * E envs in one vector env, seed-major: env k * E + e belongs to seed k.

    SAME_STEP autoreset returns the next episode's first observation at once and the finished
    episode's last one in `info["final_obs"]`, so every step yields a complete transition.
    """
    fns = [lambda: make_env(env_id) for _ in range(len(seeds) * envs_per_seed)]
    envs = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=[stream_seed(s, 2, e) for s in seeds for e in range(envs_per_seed)])
    return envs, obs


def apply_termination_penalty(
    rewards: np.ndarray, terminated: np.ndarray, penalty: float | None
) -> np.ndarray:
    """The reward to store: `penalty` where the episode terminated (not truncated), else the env's."""
    return rewards if penalty is None else np.where(terminated, penalty, rewards)


def true_next_obs(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """The observation each env's action led to: where an episode just ended, its final one,
    not the first observation of the next episode that autoreset put in `next_obs`."""
    if not done.any():
        return next_obs
    real = next_obs.copy()
    real[done] = np.stack(info["final_obs"][done])
    return real
