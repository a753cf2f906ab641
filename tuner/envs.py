"""Gymnasium environments: checking a task fits DQN, training vector envs, seeding."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from tuner import kernels
from tuner.errors import TunerError

EVAL_SEED = 1_000_000
"""Greedy evaluation episode j starts from `reset(seed=EVAL_SEED + j)`, in every run and seed."""
RECHECK_EPISODE = 1_000_000
"""A recheck (DQNConfig.recheck_episodes) plays episodes from this one on, which no evaluation or
verification plays."""


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


class CartPoleBatch:
    """Gymnasium's CartPole physics for many envs at once, bit for bit.

    `step` does the arithmetic of `CartPoleEnv.step` in the same order on float64 (a compiled
    loop, tuner.kernels.cartpole_step), so states, observations and episode ends are identical to
    stepping each env (a test checks it step for step). Resets stay with gymnasium: the caller
    reads `env.unwrapped.state` after `env.reset()`.
    """

    def __init__(self, env: gym.Env) -> None:
        cart = env.unwrapped
        self.physics = np.array(
            [
                cart.force_mag,
                cart.polemass_length,
                cart.total_mass,
                cart.gravity,
                cart.length,
                cart.masspole,
                cart.tau,
                1.0 if cart.kinematics_integrator == "euler" else 0.0,
                cart.x_threshold,
                cart.theta_threshold_radians,
            ],
            dtype=np.float64,
        )
        self.max_steps: int | None = None
        for wrapper in _wrappers(env):
            if isinstance(wrapper, gym.wrappers.TimeLimit):
                self.max_steps = wrapper._max_episode_steps

    @staticmethod
    def fits(env: gym.Env) -> bool:
        """True for a plain CartPoleEnv (reward 1 a step) under TimeLimit and OrderEnforcing
        only; any other env or wrapper is stepped by gymnasium."""
        from gymnasium.envs.classic_control.cartpole import CartPoleEnv

        plain = (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing)
        return (
            type(env.unwrapped) is CartPoleEnv
            and not getattr(env.unwrapped, "_sutton_barto_reward", True)  # unknown: not plain
            and all(type(w) in plain for w in _wrappers(env))
        )

    def step(self, state: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(next state [4, N], terminated [N]) from state [4, N] (x, x_dot, theta, theta_dot)
        and actions [N] in {0, 1}."""
        theta = state[2]
        after = np.empty_like(state)
        terminated = np.empty(state.shape[1], dtype=bool)
        kernels.cartpole_step(
            state, np.cos(theta), np.sin(theta), actions, self.physics, after, terminated
        )
        return after, terminated


def _wrappers(env: gym.Env) -> list[gym.Env]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


class TrainEnvs:
    """K seeds' E training envs each, stepped in one Python loop; every array is [K, E, ...].

    This is gymnasium's SyncVectorEnv in SAME_STEP autoreset mode without what DQN never reads:
    no info dicts, no copies of every observation, and actions passed as Python ints (the fast
    path of `Discrete.contains`). At SB3's default CartPole config that made training about 8%
    faster. Episodes and their seeding are the same as SyncVectorEnv's: env [k, e] starts from
    `reset(seed=seeds[k][e])` and later episodes continue its generator. CartPole's envs are
    stepped together by CartPoleBatch, with the same episodes.
    """

    def __init__(self, env_id: str, seeds: list[list[int]]) -> None:
        self.shape = (len(seeds), len(seeds[0]))
        self.envs: list[gym.Env] = []
        try:
            for _ in range(self.shape[0] * self.shape[1]):
                self.envs.append(make_env(env_id))
            flat = [seed for row in seeds for seed in row]
            first = [env.reset(seed=seed)[0] for env, seed in zip(self.envs, flat)]
        except BaseException:
            self.close()
            raise
        self.obs = np.stack(first).astype(np.float32).reshape(*self.shape, -1)
        # CartPole in one compiled call: it pays from one env on (a step of the default study's
        # 3 envs took 10.4 us against 30.1 env by env: benchmarks/env_step.py); episodes are the
        # same (tests check it step for step)
        self.cartpole: CartPoleBatch | None = None
        if CartPoleBatch.fits(self.envs[0]):
            self.cartpole = CartPoleBatch(self.envs[0])
            self.state = np.stack([env.unwrapped.state for env in self.envs], 1)
            self.elapsed = np.zeros(len(self.envs), dtype=np.int64)
            self.max_steps = self.cartpole.max_steps or np.iinfo(np.int64).max
            self.rewards = np.ones(self.shape)  # CartPole's reward: 1 a step
            self.rewards.flags.writeable = False  # handed out every step, so never changed

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env once: (obs, real_next_obs, rewards, terminated, done).

        `obs` is where each env is now: the next episode's first observation where an episode
        just ended. `real_next_obs` is the observation each action led to, the finished
        episode's last one there: the transition to store. `done` is terminated or truncated.
        """
        if self.cartpole is not None:
            return self._step_cartpole(actions)
        obs = np.empty_like(self.obs)
        rewards = np.empty(self.shape)
        terminated = np.zeros(self.shape, dtype=bool)
        done = np.zeros(self.shape, dtype=bool)
        flat_obs, flat_rewards = obs.reshape(len(self.envs), -1), rewards.reshape(-1)
        finals: list[tuple[int, np.ndarray]] = []
        for i, (env, action) in enumerate(zip(self.envs, actions.reshape(-1).tolist())):
            o, flat_rewards[i], term, trunc, _ = env.step(action)
            if term or trunc:
                terminated.flat[i], done.flat[i] = term, True
                finals.append((i, o))
                o = env.reset()[0]
            flat_obs[i] = o
        real_next = obs
        if finals:
            real_next = obs.copy()
            flat_real = real_next.reshape(len(self.envs), -1)
            for i, o in finals:
                flat_real[i] = o
        self.obs = obs
        return obs, real_next, rewards, terminated, done

    def _step_cartpole(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """step() with CartPoleBatch; a finished episode's env is reset by gymnasium. The
        physics, the step counts, the time limit and the float32 observations are one compiled
        call (a step of one env took 9.3 us as numpy calls around the physics, 4.1 in one)."""
        n, theta = len(self.envs), self.state[2]
        after = np.empty_like(self.state)
        real_next = np.empty((n, 4), dtype=np.float32)
        terminated, done = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
        any_done = kernels.cartpole_train_step(
            self.state,
            np.cos(theta),  # numpy's, as gymnasium's (see CartPoleBatch.step)
            np.sin(theta),
            actions.reshape(-1),
            self.cartpole.physics,
            self.elapsed,
            self.max_steps,
            after,
            real_next,
            terminated,
            done,
        )
        obs = real_next
        if any_done:
            obs = real_next.copy()
            for i in np.flatnonzero(done):
                obs[i] = self.envs[i].reset()[0]
                after[:, i] = self.envs[i].unwrapped.state
                self.elapsed[i] = 0
        self.state = after
        self.obs = obs.reshape(*self.shape, -1)
        return (
            self.obs,
            real_next.reshape(*self.shape, -1),
            self.rewards,
            terminated.reshape(self.shape),
            done.reshape(self.shape),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


def learning_rewards(
    rewards: np.ndarray, terminated: np.ndarray, penalty: float | None, scale: float = 1.0
) -> np.ndarray:
    """The rewards to store: `penalty` where the episode terminated (not truncated), else the
    env's, all times `scale`."""
    if penalty is not None:
        rewards = np.where(terminated, penalty, rewards)
    return rewards if scale == 1.0 else rewards * scale
