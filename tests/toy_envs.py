"""Small envs for tests, registered on import so `tests.toy_envs:Blowup-v0` ids work."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Blowup(gym.Env):
    """Huge observations and rewards: a squared TD error overflows float32 on the first update."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(2, 1e30, np.float32), {}

    def step(self, action):
        return np.full(2, 1e30, np.float32), 1e30, False, False, {}


gym.register("Blowup-v0", entry_point=Blowup, max_episode_steps=20)


class Fork(gym.Env):
    """One constant observation. Action 0 ends the episode (terminates) with reward 1; action 1
    earns 1 and goes on, until the time limit of 3 steps truncates the episode."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), 1.0, action == 0, False, {}


gym.register("Fork-v0", entry_point=Fork, max_episode_steps=3)
