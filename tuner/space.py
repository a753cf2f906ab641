"""The search space: which DQNConfig fields a study searches and how Optuna samples them.

Parameter names are DQNConfig field names and sampled values are valid field values, so a trial's
params need no converting: `DQNConfig.from_dict({**base, **trial.params})` is the config.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import optuna

from tuner.config import DQNConfig, did_you_mean, field_names
from tuner.errors import TunerError

SET_BY_STUDY = ("env", "total_steps", "eval_every", "eval_episodes", "seed")
"""DQNConfig fields that a study file's env, budget and seeds set for every trial."""

CONDITIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "tau": ("target_update", ("soft",)),
    "per_alpha": ("prioritized", (True,)),
    "per_beta": ("prioritized", (True,)),
    "per_beta_end": ("prioritized", (True,)),
    "per_eps": ("prioritized", (True,)),
    "amsgrad": ("optimizer", ("adam", "adamw")),
}
"""A field that only matters when its switch has one of these values is sampled only then."""


@dataclass(frozen=True)
class Param:
    """One searched field: a float or int range (optionally log), a list of choices, or fixed."""

    name: str
    kind: str  # "float", "int", "choice" or "fixed"
    low: float | str = 0.0  # a number, or the name of a field sampled before this one
    high: float | str = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    value: Any = None

    @property
    def depends_on(self) -> tuple[str, ...]:
        """The fields whose values bound this one's range (`high: train_frequency`)."""
        return tuple(b for b in (self.low, self.high) if isinstance(b, str))

    def bounds(self, values: dict[str, Any]) -> tuple[float, float]:
        """The range in a trial whose other fields are `values` (defaults where absent)."""
        return tuple(
            values.get(b, getattr(DQNConfig, b)) if isinstance(b, str) else b
            for b in (self.low, self.high)
        )

    def suggest(self, trial: optuna.Trial, values: dict[str, Any]) -> Any:
        low, high = self.bounds(values)
        if self.kind == "float":
            return trial.suggest_float(self.name, low, high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(low), int(high), log=self.log)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.value


def parse_space(space: Any, *, source: str) -> dict[str, Param]:
    """The `space:` mapping of a study file, checked field by field."""
    if not isinstance(space, dict) or not space:
        raise TunerError(
            f"{source}: 'space' must map DQNConfig fields to ranges, choices or values"
        )
    names, hints = field_names(), typing.get_type_hints(DQNConfig)
    params = {}
    for name, spec in space.items():
        where = f"{source}: space.{name}"
        if name not in names:
            raise TunerError(f"{where} is not a DQNConfig field{did_you_mean(str(name), names)}")
        if name in SET_BY_STUDY:
            raise TunerError(
                f"{where} is set by the study itself (env, budget, seeds), not searched"
            )
        params[name] = _parse_param(name, spec, hints[name], where)
    for param in params.values():
        for other in param.depends_on:
            where = f"{source}: space.{param.name}"
            if other not in names:
                raise TunerError(
                    f"{where} is bounded by '{other}', which is not a DQNConfig field"
                    f"{did_you_mean(other, names)}"
                )
            if hints[other] not in (int, float):
                raise TunerError(f"{where} is bounded by '{other}', which is not a number")
            if other in params and params[other].depends_on:
                raise TunerError(f"{where} is bounded by '{other}', whose own range is bounded")
    return params


def _parse_param(name: str, spec: Any, hint: Any, where: str) -> Param:
    is_int = hint is int
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log"}
        if unknown or not {"low", "high"} <= set(spec):
            raise TunerError(f"{where} must be {{low: L, high: H}} with optional log: true")
        low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
        numbers = [b for b in (low, high) if not isinstance(b, str)]
        for bound in numbers:
            _check_value(name, bound, where)
        if isinstance(low, str) and isinstance(high, str):
            raise TunerError(f"{where} may name another field as one bound, not both")
        if len(numbers) == 2 and not low < high:
            raise TunerError(
                f"{where} has an empty or inverted range [{low}, {high}]; make low < high"
            )
        if log and not isinstance(low, str) and low <= 0:
            raise TunerError(f"{where} is log-scaled, so low must be > 0 (got {low})")
        return Param(name, "int" if is_int else "float", low=low, high=high, log=log)
    if isinstance(spec, list) and _is_choice_list(spec, hint):
        if not spec:
            raise TunerError(f"{where} is an empty list of choices; give at least one")
        choices = tuple("x".join(map(str, c)) if isinstance(c, list) else c for c in spec)
        for choice in choices:
            _check_value(name, choice, where)
        return Param(name, "choice", choices=choices)
    _check_value(name, spec, where)
    return Param(name, "fixed", value=spec)


def _is_choice_list(spec: list, hint: Any) -> bool:
    """A list is a list of choices, except a plain list of ints for a tuple field (one value)."""
    if typing.get_origin(hint) is tuple:
        return all(isinstance(c, list | str) for c in spec)
    return True


def _check_value(name: str, value: Any, where: str) -> None:
    try:
        DQNConfig.from_dict({name: value})
    except TunerError as exc:
        raise TunerError(f"{where}: {str(exc).removeprefix('config: ')}") from None


def suggest_config(
    trial: optuna.Trial, space: dict[str, Param], fixed: dict[str, Any]
) -> DQNConfig:
    """Sample every searched field over the fixed ones: switches and bounds first, then the fields
    they enable or bound. A bound that names a field takes that field's value in this trial."""
    values = dict(fixed)
    ordered = sorted(space.values(), key=lambda p: (p.name in CONDITIONS, bool(p.depends_on)))
    for param in ordered:
        switch, allowed = CONDITIONS.get(param.name, (None, ()))
        if switch is not None and values.get(switch, getattr(DQNConfig, switch)) not in allowed:
            continue
        values[param.name] = param.suggest(trial, values)
    return DQNConfig.from_dict(values, source=f"trial {trial.number}")
