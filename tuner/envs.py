"""Gymnasium environments: checking a task fits DQN, training vector envs, seeding."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

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


class TrainEnvs:
    """K * E training envs stepped in one Python loop, seed-major: env k * E + e is seed k's.

    This is gymnasium's SyncVectorEnv in SAME_STEP autoreset mode without what DQN never reads:
    no info dicts, no copies of every observation, and actions passed as Python ints (the fast
    path of `Discrete.contains`). On CartPole that makes a step of the training loop about 10%
    cheaper. Episodes and their seeding are the same as SyncVectorEnv's: env i starts from
    `reset(seed=seeds[i])` and later episodes continue its generator.
    """

    def __init__(self, env_id: str, seeds: list[int]) -> None:
        self.envs: list[gym.Env] = []
        try:
            for _ in seeds:
                self.envs.append(make_env(env_id))
            self.obs = np.stack(
                [env.reset(seed=seed)[0] for env, seed in zip(self.envs, seeds)]
            ).astype(np.float32)
        except BaseException:
            self.close()
            raise

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env once: (obs, real_next_obs, rewards, terminated, truncated).

        `obs` is where each env is now: the next episode's first observation where an episode
        just ended. `real_next_obs` is the observation each action led to, the finished
        episode's last one there: the transition to store.
        """
        n = len(self.envs)
        obs = np.empty_like(self.obs)
        rewards = np.empty(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        finals: list[tuple[int, np.ndarray]] = []
        for i, (env, action) in enumerate(zip(self.envs, actions.tolist())):
            o, rewards[i], term, trunc, _ = env.step(action)
            if term or trunc:
                terminated[i], truncated[i] = term, trunc
                finals.append((i, o))
                o = env.reset()[0]
            obs[i] = o
        real_next = obs
        if finals:
            real_next = obs.copy()
            for i, o in finals:
                real_next[i] = o
        self.obs = obs
        return obs, real_next, rewards, terminated, truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()


def apply_termination_penalty(
    rewards: np.ndarray, terminated: np.ndarray, penalty: float | None
) -> np.ndarray:
    """The reward to store: `penalty` where the episode terminated (not truncated), else the env's."""
    return rewards if penalty is None else np.where(terminated, penalty, rewards)
