"""The search space: which DQNConfig fields a study searches and how Optuna samples them.

Parameter names are DQNConfig field names and sampled values are valid field values, so a trial's
params need no converting: `DQNConfig.from_dict({**base, **trial.params})` is the config.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
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
        return tuple(split_bound(b)[0] for b in (self.low, self.high) if isinstance(b, str))

    def bounds(self, values: dict[str, Any]) -> tuple[float, float]:
        """The range in a trial whose other fields are `values` (defaults where absent). A
        bound that is a fraction of a field (`train_frequency / 4`) is rounded inwards for an
        int field, so the range never holds a value the fraction does not allow."""
        return tuple(
            _bound_value(b, values, self.kind == "int", inwards=r)
            for b, r in ((self.low, math.ceil), (self.high, math.floor))
        )

    def suggest(self, trial: optuna.Trial, values: dict[str, Any]) -> Any:
        low, high = self.bounds(values)  # never empty: check_ranges and the enqueue check
        if self.kind == "float":
            return trial.suggest_float(self.name, low, high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(low), int(high), log=self.log)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.value


def split_bound(bound: str) -> tuple[str, float]:
    """A bound that names a field: `train_frequency` -> (train_frequency, 1), `train_frequency
    / 4` -> (train_frequency, 4). A divisor that is not a positive number is a TunerError."""
    name, slash, divisor = (part.strip() for part in bound.partition("/"))
    if not slash:
        return name, 1.0
    try:
        value = float(divisor)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise TunerError(f"divides by {divisor!r}; write FIELD / N with N a positive number")
    return name, value


def _bound_value(
    bound: float | str, values: dict[str, Any], is_int: bool, inwards: Callable[[float], int]
) -> float:
    if not isinstance(bound, str):
        return bound
    name, divisor = split_bound(bound)
    value = values.get(name, getattr(DQNConfig, name)) / divisor
    return inwards(value) if is_int else value


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


def check_ranges(space: dict[str, Param], fixed: dict[str, Any], *, source: str) -> None:
    """A range bounded by another field must hold a value whatever that field is: each of its
    choices, the ends of its range, or its fixed value (`fixed`: base and budget, which must
    be valid already; DQNConfig's default where neither sets it)."""
    for param in space.values():
        for other in param.depends_on:
            if other in space:
                values = _values_of(space[other])
            else:
                values = (fixed.get(other, getattr(DQNConfig, other)),)
            for value in values:
                low, high = param.bounds({**fixed, other: value})
                if low > high:
                    raise TunerError(
                        f"{source}: space.{param.name} is empty when {other} is {value} "
                        f"([{low}, {high}]); leave {value} out of {other}'s values or widen "
                        "the range"
                    )


def _values_of(param: Param) -> tuple[Any, ...]:
    """The values of a searched field that decide whether a range it bounds is empty: a range's
    ends do, as a bound grows with the field."""
    if param.kind == "choice":
        return param.choices
    if param.kind == "fixed":
        return (param.value,)
    return (param.low, param.high)


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
        for bound in (b for b in (low, high) if isinstance(b, str)):
            try:
                split_bound(bound)
            except TunerError as exc:
                raise TunerError(f"{where}: '{bound}' {exc}") from None
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
