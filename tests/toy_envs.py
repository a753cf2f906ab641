"""Small envs for tests, registered on import so `tests.toy_envs:Blowup-v0` ids work."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from tuner.config import DQNConfig


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
gym.register("ForkGoal-v0", entry_point=Fork, max_episode_steps=3, reward_threshold=3.0)
"""Fork with a reward threshold: a seed solves it when its greedy policy lasts the 3 steps."""


class Unstable(Fork):
    """Fork, but on about half the seeds (drawn at the first seeded reset) every observation is
    3e38, near float32's largest: a network's Q-values overflow there, and that seed's training diverges at once."""

    huge = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.huge = bool(self.np_random.random() < 0.5)
        return self.obs(), {}

    def step(self, action):
        return self.obs(), 1.0, action == 0, False, {}

    def obs(self):
        return np.full(1, 3e38 if self.huge else 1.0, np.float32)


gym.register("Unstable-v0", entry_point=Unstable, max_episode_steps=3, reward_threshold=3.0)

FORK = DQNConfig(
    env="tests.toy_envs:Fork-v0",
    gamma=0.5,
    learning_starts=100,
    train_frequency=1,
    hidden_sizes=(16,),
    target_update_interval=50,
    epsilon_start=1.0,
    epsilon_end=1.0,
    termination_penalty=-5.0,
    eval_every=0,
)
"""Fork with exploration always on. With gamma 0.5 the fixed points are Q(s, 0) = -5 (the
penalty) and Q(s, 1) = 1 + 0.5 * Q(s, 1) = 2, so the greedy policy lasts the 3 steps."""
