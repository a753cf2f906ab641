"""DQNConfig: every hyperparameter of a training run, validated, loaded from and saved to YAML.

Field names are the words users type in YAML, on the command line and in Optuna's search space.
All step counts are env steps per seed (transitions one seed collects, over all its envs).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from tuner.errors import TunerError


@dataclass(frozen=True)
class DQNConfig:
    env: str = "CartPole-v1"
    """Gymnasium id (or `module:EnvId`) of a task with discrete actions and vector observations."""
    total_steps: int = 50_000
    """Env steps each seed trains for."""
    envs_per_seed: int = 1
    """Parallel training envs per seed; they share the seed's network and replay buffer."""

    learning_rate: float = 1e-4
    """Optimizer step size (at step 0, with a linear schedule)."""
    learning_rate_schedule: Literal["constant", "linear"] = "constant"
    """constant, or linear: from learning_rate at step 0 down to 0 at total_steps (RL Zoo's
    'lin_' schedules), which slows learning as training ends so the final policy settles."""
    optimizer: Literal["adam", "adamw", "rmsprop"] = "adam"
    """Optimizer for the online network."""
    amsgrad: bool = False
    """Use the AMSGrad variant of adam/adamw."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for adamw, L2 for adam and rmsprop)."""
    batch_size: int = 32
    """Transitions per gradient step, per seed."""
    gamma: float = 0.99
    """Discount factor."""
    replay_size: int = 1_000_000
    """Replay buffer capacity in transitions, per seed."""
    learning_starts: int = 100
    """Env steps of uniformly random actions collected before the first gradient step."""
    train_frequency: int = 4
    """Env steps between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase."""

    target_update: Literal["hard", "soft"] = "hard"
    """Copy the online weights to the target network (hard) or move towards them by tau (soft)."""
    target_update_interval: int = 10_000
    """Env steps between target updates."""
    tau: float = 0.005
    """Soft update rate: target <- tau * online + (1 - tau) * target. Used only when soft."""

    epsilon_start: float = 1.0
    """Exploration rate at step 0."""
    epsilon_end: float = 0.05
    """Exploration rate the schedule decays to."""
    epsilon_decay_steps: int = 5_000
    """Linear: env steps to reach epsilon_end. Exponential: the decay constant (PyTorch tutorial)."""
    epsilon_schedule: Literal["linear", "exponential"] = "linear"
    """Shape of the epsilon decay."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the Q-network's hidden layers, as a list or as "64x64"."""
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    """Hidden-layer activation."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A)."""
    double_dqn: bool = False
    """Double DQN: the online network picks the next action, the target network values it."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: Huber (smooth L1, delta 1) or mean squared error."""
    grad_clip_value: float | None = None
    """Clamp every gradient element to [-value, value]; null turns it off."""
    grad_clip_norm: float | None = 10.0
    """Rescale each seed's gradient to at most this L2 norm; null turns it off."""
    termination_penalty: float | None = None
    """Reward stored on a terminating step instead of the env's (e.g. -15); null keeps the env's.
    Truncation by a time limit is not termination and is never penalised."""
    reward_scale: float = 1.0
    """Every reward the agent learns from is multiplied by this, the termination penalty
    included; evaluation returns stay the env's. With a long horizon (gamma 0.999, Q-values up
    to 1,000 on CartPole), a scale of 0.01 keeps them under 10, where Adam's steps, about the
    learning rate each, can move them within a short budget."""
    n_step: int = 1
    """Steps of real reward in each TD target before bootstrapping."""

    prioritized: bool = False
    """Prioritized experience replay (proportional)."""
    per_alpha: float = 0.6
    """How strongly priorities skew sampling (0 is uniform)."""
    per_beta: float = 0.4
    """Importance-weight exponent at step 0."""
    per_beta_end: float = 1.0
    """Importance-weight exponent at the last step; beta is annealed linearly."""
    per_eps: float = 1e-6
    """Added to |TD error| so no transition gets priority zero."""

    eval_every: int = 10_000
    """Env steps between greedy evaluations; 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Greedy episodes per seed in each evaluation."""
    keep_weights: Literal["final", "best"] = "final"
    """The weights a run ends with (its checkpoints, and what the export plays): final, the
    last step's; or best, each seed's at its best evaluation, the latest of equals (as
    Stable-Baselines3's EvalCallback keeps a best model), so a late collapse keeps what it had."""
    recheck_episodes: int = 0
    """With keep_weights best: an evaluation that scores at least a seed's best so far also plays
    this many greedy episodes that no evaluation or verification plays, and of the evaluations
    tied at the best the seed keeps the one that scores best on them (the latest of equals). A
    few episodes at 500 can hide weights that average below 475 over 100; 0 checks nothing."""
    seed: int = 0
    """Seed of the first trained copy; copy k uses seed + k."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(
                self, f.name, _coerce(f.name, getattr(self, f.name), _hints()[f.name])
            )
        _validate(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> DQNConfig:
        """Build a config from a mapping; an unknown key names the closest valid one."""
        if not isinstance(data, dict):
            raise TunerError(
                f"{source}: expected a mapping of DQNConfig fields, got {type(data).__name__}"
            )
        names = field_names()
        for key in data:
            if key not in names:
                raise TunerError(f"{source}: unknown field {key!r}{did_you_mean(str(key), names)}")
        try:
            return cls(**data)
        except TunerError as exc:
            raise TunerError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready values (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def replace(self, *, source: str = "override", **changes: Any) -> DQNConfig:
        """A copy with some fields changed, validated; an error starts with `source` (say, the
        command-line flag the changes came from)."""
        return DQNConfig.from_dict({**self.to_dict(), **changes}, source=source)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(DQNConfig)]


@functools.cache
def field_docs() -> dict[str, str]:
    """The docstring under each field, read from the source (it is the field's help text)."""
    tree = ast.parse(inspect.getsource(DQNConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def load_config(path: str | Path) -> DQNConfig:
    """Read a DQNConfig from a YAML file."""
    return DQNConfig.from_dict(read_yaml(path), source=str(path))


def save_config(config: DQNConfig, path: str | Path) -> None:
    """Write every field, so the file alone reproduces the run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, or a TunerError that says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise TunerError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise TunerError(f"{path}: not valid YAML{where}; fix the syntax and try again") from None
    if not isinstance(data, dict):
        raise TunerError(f"{path}: expected a mapping of keys to values at the top level")
    return data


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(DQNConfig)


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid fields: {', '.join(options)}"


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Accept what YAML and command lines naturally give (1e5, "0.001", [64, 64]) or fail clearly."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `X | None`
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is Literal:
        if value not in args:
            raise TunerError(
                f"{name}={value!r} is not allowed; choose one of {', '.join(map(str, args))}"
            )
        return value
    if typing.get_origin(hint) is tuple:
        if isinstance(value, str) and "x" in value:  # "64x64": how a search space names a choice
            value = value.split("x")
        if isinstance(value, int | str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise TunerError(f"{name}={value!r} must be a list of integers, e.g. [64, 64]")
        return tuple(_coerce(name, v, int) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise TunerError(f"{name}={value!r} must be true or false")
        return value
    if isinstance(value, bool):
        raise TunerError(f"{name}={value!r} must be a number, not true/false")
    if isinstance(value, str) and hint in (int, float):
        try:
            value = float(value)
        except ValueError:
            raise TunerError(f"{name}={value!r} must be a number") from None
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise TunerError(f"{name}={value!r} must be a whole number")
        return value
    if hint is float:
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise TunerError(f"{name}={value!r} must be a finite number")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise TunerError(f"{name}={value!r} must be a string")
    return value


def _require(config: DQNConfig, name: str, ok: bool, allowed: str) -> None:
    if not ok:
        value = getattr(config, name)
        shown = list(value) if isinstance(value, tuple) else value  # as the user wrote it
        raise TunerError(f"{name}={shown!r} is out of range; it must be {allowed}")


def _validate(c: DQNConfig) -> None:
    _require(c, "env", bool(c.env.strip()), "a gymnasium id such as 'CartPole-v1'")
    for name in (
        "total_steps",
        "envs_per_seed",
        "batch_size",
        "train_frequency",
        "gradient_steps",
        "target_update_interval",
        "epsilon_decay_steps",
        "n_step",
        "eval_episodes",
    ):
        _require(c, name, getattr(c, name) >= 1, ">= 1")
    for name in (
        "learning_starts",
        "eval_every",
        "seed",
        "weight_decay",
        "per_alpha",
        "recheck_episodes",
    ):
        _require(c, name, getattr(c, name) >= 0, ">= 0")
    _require(c, "learning_rate", 0 < c.learning_rate <= 1, "in (0, 1]")
    _require(c, "gamma", 0 <= c.gamma <= 1, "in [0, 1]")
    _require(c, "tau", 0 < c.tau <= 1, "in (0, 1]")
    for name in ("epsilon_start", "epsilon_end", "per_beta", "per_beta_end"):
        _require(c, name, 0 <= getattr(c, name) <= 1, "in [0, 1]")
    _require(c, "per_eps", c.per_eps > 0, "> 0")
    _require(c, "reward_scale", c.reward_scale > 0, "> 0")
    _require(
        c,
        "replay_size",
        c.replay_size >= max(c.batch_size, c.n_step + 1),
        f"at least batch_size ({c.batch_size}) and more than n_step ({c.n_step})",
    )
    _require(
        c,
        "hidden_sizes",
        len(c.hidden_sizes) >= 1 and min(c.hidden_sizes) >= 1,
        "a non-empty list of positive widths",
    )
    for name in ("grad_clip_value", "grad_clip_norm"):
        _require(c, name, getattr(c, name) is None or getattr(c, name) > 0, "> 0, or null for off")
    _require(
        c,
        "amsgrad",
        not c.amsgrad or c.optimizer in ("adam", "adamw"),
        "false unless optimizer is adam or adamw",
    )
