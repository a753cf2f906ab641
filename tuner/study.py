"""A study file (studies/<name>.yaml): the task, the per-trial budget, the objective, the search."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from tuner.config import DQNConfig, did_you_mean, read_yaml
from tuner.errors import TunerError
from tuner.space import SET_BY_STUDY, Param, check_ranges, parse_space

SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "gp": optuna.samplers.GPSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}
AGGREGATES = ("mean", "median", "min", "iqm")
TIE = 0.01
"""The default `objective.tie`: complete trials within this much (relative) of the best score tie
with it. A capped return (CartPole's 500) makes exact ties common, and a few evaluation episodes
on a few seeds cannot tell 498 from 500 either. `tuner.run` counts the ties and `tuner.export`
verifies them. An uncapped return needs a tolerance the size of its noise (studies/acrobot.yaml
takes 0.1)."""
FEW_TIES = 8
"""A study whose best score fewer trials than this tie with has seldom held a config that solves
every fresh seed. Measured on the default CartPole study and its variants (129 studies, each tie
retrained on 5 held-out seeds by benchmarks/export_pick.py; benchmarks/pick_pool.py groups them):
all 102 that ended with 8 or more ties held such a config and the export picked one in 77; of the
27 with fewer, 12 held one and the export picked one in 8. Running two of those on to 300
trials, or widening their tie to 5%, found none; a study with another sampler seed is a new
draw. See the README, "How far to trust a study"."""
KEYS = ("env", "budget", "seeds", "objective", "base", "space", "enqueue", "sampler", "pruner")


@dataclass(frozen=True)
class Enqueued:
    """A known config, tried before the sampler's own. Its values that the space can hold are the
    trial's params; the others (fields the space does not search, or values outside it: RL Zoo's
    256x256 net in a space of smaller ones) are fixed for that trial alone. So it trains exactly
    as written, and the sampler learns from it only through what its distributions can hold."""

    params: dict[str, Any]
    fixed: dict[str, Any]


@dataclass(frozen=True)
class StudySpec:
    path: Path
    env: str
    steps: int
    """Env steps per seed in every trial."""
    eval_every: int
    eval_episodes: int
    seeds: int
    """Seeds trained together in every trial."""
    aggregate: str
    """How the seeds' returns at one evaluation become one number: mean, median, min or iqm."""
    last_evals: int
    """The trial's value is the aggregate averaged over its last n evaluations."""
    confirm: int
    """Seeds trained in addition, after its own, for a trial whose own seeds score within `tie`
    of the best own-seeds score so far; its value is then the aggregate over all its seeds
    (0: never)."""
    base: dict[str, Any]
    space: dict[str, Param]
    enqueue: list[Enqueued]
    sampler: str
    sampler_options: dict[str, Any] = field(default_factory=dict)
    pruner: str = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    tie: float = TIE
    """Trials within this fraction of the best score tie with it (see TIE)."""
    export_steps: int | None = None
    """Env steps per seed when tuner.export retrains a trial's config (None: `steps`, what the
    trials trained)."""
    export_recheck: int | None = None
    """The recheck_episodes tuner.export retrains a trial's config with (None: the trial's own).
    Trials do not use the weights they keep, so a recheck during a study would cost time and
    change nothing; the export's retrains keep and save theirs."""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def default_storage(self) -> str:
        return default_storage(self.path)

    def trial_seeds(self, number: int) -> tuple[list[int], list[int]]:
        """Trial `number`'s own seeds and its confirmation seeds: one block per trial, so no two
        trials share a seed whether or not they were confirmed."""
        first = number * (self.seeds + self.confirm)
        own = list(range(first, first + self.seeds))
        return own, list(range(first + self.seeds, first + self.seeds + self.confirm))

    def fixed(self) -> dict[str, Any]:
        """The DQNConfig fields no trial changes: base, env and budget."""
        return {
            **self.base,
            "env": self.env,
            "total_steps": self.steps,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
        }

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return SAMPLERS[self.sampler](**self.sampler_options)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        return PRUNERS[self.pruner](**self.pruner_options)


def study_dir(name: str, study_file: Path | None) -> Path:
    """Where a study's exports and artifact store live: studies/<name>/ beside its study file, or
    under ./studies when the study is reached by --storage alone."""
    return (study_file.parent if study_file is not None else Path("studies")) / name


def aggregate(returns: np.ndarray, how: str) -> float:
    """One number from the seeds' returns; iqm is the mean of the middle half (as in rliable)."""
    values = np.sort(np.asarray(returns, dtype=float))
    if how == "mean":
        return float(values.mean())
    if how == "median":
        return float(np.median(values))
    if how == "min":
        return float(values[0])
    cut = int(len(values) * 0.25)
    return float(values[cut : len(values) - cut].mean())


def load_study_spec(path: str | Path) -> StudySpec:
    """Read and check a study file; every problem is one sentence naming the file and the key."""
    path = Path(path)
    data = read_yaml(path)
    src = str(path)
    for key in data:
        if key not in KEYS:
            raise TunerError(f"{src}: unknown key {key!r}{did_you_mean(str(key), list(KEYS))}")
    for key in ("env", "budget", "space"):
        if key not in data:
            raise TunerError(f"{src}: missing {key!r}; see studies/cartpole.yaml for an example")

    budget = _mapping(data, "budget", src)
    _only(
        budget,
        ("steps", "eval_every", "eval_episodes", "export_steps", "export_recheck"),
        f"{src}: budget",
    )
    steps = _whole(budget.get("steps"), f"{src}: budget.steps")
    export_steps = budget.get("export_steps")
    if export_steps is not None:
        export_steps = _whole(export_steps, f"{src}: budget.export_steps")
    export_recheck = budget.get("export_recheck")
    if export_recheck is not None:
        export_recheck = _whole(export_recheck, f"{src}: budget.export_recheck", least=0)
    eval_every = _whole(budget.get("eval_every", max(1, steps // 5)), f"{src}: budget.eval_every")
    eval_episodes = _whole(budget.get("eval_episodes", 5), f"{src}: budget.eval_episodes")
    seeds = _whole(data.get("seeds", 3), f"{src}: seeds")

    objective = _mapping(data, "objective", src)
    _only(objective, ("aggregate", "last", "confirm", "tie"), f"{src}: objective")
    how = objective.get("aggregate", "iqm")
    if how not in AGGREGATES:
        raise TunerError(
            f"{src}: objective.aggregate={how!r}; choose one of {', '.join(AGGREGATES)}"
        )
    last = _whole(objective.get("last", 1), f"{src}: objective.last")
    confirm = _whole(objective.get("confirm", 0), f"{src}: objective.confirm", least=0)
    tie = read_tie(objective.get("tie", TIE), f"{src}: objective.tie")

    base = _mapping(data, "base", src)
    space = parse_space(data["space"], source=src)
    both = sorted(set(base) & set(space))
    if both:
        raise TunerError(
            f"{src}: {both[0]!r} is both fixed in base and searched in space; keep one"
        )
    spec = StudySpec(
        path=path,
        env=str(data["env"]),
        steps=steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        seeds=seeds,
        aggregate=how,
        last_evals=last,
        confirm=confirm,
        tie=tie,
        export_steps=export_steps,
        export_recheck=export_recheck,
        base=base,
        space=space,
        enqueue=[],
        sampler="tpe",
    )
    DQNConfig.from_dict(spec.fixed(), source=f"{src}: base")  # base and budget are valid fields
    check_ranges(space, spec.fixed(), source=src)
    enqueue = [
        _check_enqueued(entry, i, spec, src) for i, entry in enumerate(data.get("enqueue") or [])
    ]
    sampler, sampler_options = _component(data, "sampler", SAMPLERS, "tpe", src)
    pruner, pruner_options = _component(data, "pruner", PRUNERS, "median", src)
    spec = StudySpec(
        **{
            **spec.__dict__,
            "enqueue": enqueue,
            "sampler": sampler,
            "sampler_options": sampler_options,
            "pruner": pruner,
            "pruner_options": pruner_options,
        }
    )
    for kind, make in (("sampler", spec.make_sampler), ("pruner", spec.make_pruner)):
        try:
            make()
        except (TypeError, ValueError) as exc:
            raise TunerError(f"{src}: {kind} options are not accepted: {exc}") from None
    return spec


def default_storage(study_file: Path) -> str:
    """A study file's own database: studies/cartpole.yaml keeps its trials in studies/cartpole.db."""
    return f"sqlite:///{study_file.parent / (study_file.stem + '.db')}"


def recorded(study: optuna.Study, key: str) -> dict[str, Any]:
    """A section (`objective`, `budget`) of the study file a study recorded when it was created
    (empty if none): its trials were run with it, whatever the file says now."""
    file = yaml.safe_load(study.user_attrs.get("study_file") or "") or {}
    return file.get(key) or {}


def few_ties(ties: int, best: float, threshold: float | None) -> str | None:
    """What to say when only `ties` trials (the best included) tie at the best score, up to where
    the command that starts a study with another sampler seed goes; None when they are enough,
    or when the best is short of the env's reward `threshold` (None: the env has none), since a
    study that has not solved the task has a plainer problem than its ties."""
    if ties >= FEW_TIES or (threshold is not None and best < threshold):
        return None
    return (
        f"only {ties} trial{'s' * (ties != 1)} tie{'s' * (ties == 1)} at the best score: of the "
        "CartPole studies measured, those that ended with so few ties seldom held a config that "
        "solves every fresh seed, and more trials of them did not find one (README: How far to "
        "trust a study). A new study with another sampler seed is the better next step"
    )


def percent(tie: float) -> str:
    """A tie tolerance as people write it: 0.01 -> "1%", 0.1 -> "10%", 0.005 -> "0.5%"."""
    return f"{tie * 100:g}%"


def read_tie(value: Any, where: str) -> float:
    """A tie tolerance: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise TunerError(
            f"{where}={value!r} must be a number in [0, 1): the fraction of the best score "
            "within which trials tie (0.01 for a capped return such as CartPole's 500)"
        )
    return float(value)


def _mapping(data: dict, key: str, src: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise TunerError(f"{src}: {key!r} must be a mapping of keys to values")
    return value


def _only(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise TunerError(f"{where}: unknown key {key!r}{did_you_mean(str(key), list(allowed))}")


def _whole(value: Any, where: str, least: int = 1) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise TunerError(f"{where}={value!r} must be a whole number >= {least}")
    return value


def _component(data: dict, key: str, table: dict, default: str, src: str) -> tuple[str, dict]:
    """`sampler: tpe` or `sampler: {name: tpe, seed: 0, ...options}`."""
    value = data.get(key, default)
    options = {}
    if isinstance(value, dict):
        options = {k: v for k, v in value.items() if k != "name"}
        value = value.get("name", default)
    if value not in table:
        raise TunerError(f"{src}: {key} {value!r} is unknown; choose one of {', '.join(table)}")
    return value, options


def _check_enqueued(entry: Any, i: int, spec: StudySpec, src: str) -> Enqueued:
    where = f"{src}: enqueue[{i}]"
    if not isinstance(entry, dict):
        raise TunerError(f"{where} must be a mapping of DQNConfig fields to values")
    params, fixed = {}, {}
    for name, value in entry.items():
        if name in SET_BY_STUDY:
            raise TunerError(
                f"{where}.{name} is set by the study itself (env, budget, seeds); remove it"
            )
        param = spec.space.get(name)
        if param is None:
            fixed[name] = value
            continue
        as_param = "x".join(map(str, value)) if isinstance(value, list) else value
        try:
            low, high = param.bounds({**spec.fixed(), **entry})
        except TypeError:  # its bound's field holds no number here; from_dict below names it
            low, high = math.inf, -math.inf
        inside = (param.kind == "choice" and as_param in param.choices) or (
            param.kind in ("float", "int")
            and isinstance(as_param, int | float)
            and not isinstance(as_param, bool)
            and low <= as_param <= high
        )
        if inside:
            params[name] = as_param
        elif not (param.kind == "fixed" and as_param == param.value):
            fixed[name] = value
    config = DQNConfig.from_dict({**spec.fixed(), **params, **fixed}, source=where)
    for name, param in spec.space.items():  # sampled in this trial, within bounds it sets
        if name not in entry and param.depends_on:
            low, high = param.bounds(dataclasses.asdict(config))  # its values, read as numbers
            if low > high:
                raise TunerError(
                    f"{where} leaves space.{name} no value ([{low}, {high}] with its "
                    f"{', '.join(param.depends_on)}); give {name} a value here too"
                )
    return Enqueued(params, fixed)


def rank(trial: FrozenTrial) -> tuple:
    """Best first: the study's score, then, among equal scores (common at a capped return),
    the mean of the trial's intermediate values, the area under its curve, which favours the
    trial that got there sooner (a trial that reported none comes after those that did, at any
    sign of reward); then the trial number. Whether the sooner trial also holds up on fresh
    seeds varied from study to study (README): tuner.export verifies the ties, not this order."""
    curve = list(trial.intermediate_values.values())
    return (-trial.value, -float(np.mean(curve)) if curve else np.inf, trial.number)


def ties_with(value: float, best: float, tie: float = TIE) -> bool:
    """Whether a score is within `tie` (relative) of the best score (or above it)."""
    return value >= best - tie * max(abs(best), 1e-9)


def close_to_best(trials: list[FrozenTrial], tie: float = TIE) -> list[FrozenTrial]:
    """The complete trials within `tie` of the best score, best first (by `rank`)."""
    ranked = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=rank)
    return [t for t in ranked if ties_with(t.value, ranked[0].value, tie)]
