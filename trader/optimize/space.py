"""Parameter spaces: which strategy fields to tune, over which ranges, under which constraints.

A space file (YAML, beside the strategy) looks like

    params:
      entry.volatility_breakout.k: {low: 0.2, high: 0.8, step: 0.05}
      exits.take_profit[0].gain: {low: 0.005, high: 0.02}
      exits.stop_loss: {low: 0.005, high: 0.05, log: true}
      cooldown.max_entries_per_day: {choices: [1, 2, 3, 5]}
    constraints:
      - exits.take_profit[1].gain > exits.take_profit[0].gain

A range whose low, high (and step) are all integers is an integer range, otherwise a float one;
`type: int|float` says it explicitly. A constraint is an expression over paths (comparisons,
`and`/`or`/`not`, + − × ÷, numbers); a path not tuned takes the strategy's own value.
`load_space` checks all of it against the strategy before any trial runs and raises
`SpaceError` naming the entry (`params.<path>` or `constraints[i]`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from trader.optimize.constraints import compile_constraint, evaluate_constraint
from trader.optimize.paths import apply, get_path, parse_path
from trader.strategy.config import StrategyConfig

__all__ = ["Param", "Space", "SpaceError", "apply", "base_values", "get_path", "load_space", "parse_path",
           "satisfied", "suggest"]

if TYPE_CHECKING:
    import optuna

SAMPLE_CHECKS = 2000  # random points tried to show that the constraints can be met


class SpaceError(ValueError):
    """A space that cannot be searched; the message starts with the entry it is about."""


@dataclass(frozen=True)
class Param:
    """One tuned field: a numeric range (low..high, optional step / log scale) or choices."""

    path: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    integer: bool = False

    @property
    def name(self) -> str:
        return f"params.{self.path}"

    def sample(self, rng: random.Random) -> Any:
        """A random point of the range (for the satisfiability check, not for the search)."""
        if self.choices is not None:
            return rng.choice(self.choices)
        lo, hi = self.low, self.high
        assert lo is not None and hi is not None
        if self.step:
            n = math.floor((hi - lo) / self.step + 1e-9)
            v = lo + rng.randint(0, n) * self.step
            return int(v) if self.integer else v
        v = math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.log else rng.uniform(lo, hi)
        return round(v) if self.integer else v

    def corners(self) -> list[Any]:
        """The values whose validity against the strategy is checked one by one."""
        if self.choices is not None:
            return list(self.choices)
        return [self.low, self.high]


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    constraints: tuple[str, ...] = ()

    def param(self, path: str) -> Param:
        for p in self.params:
            if p.path == path:
                return p
        raise KeyError(path)


# ---------------------------------------------------------------------------------- values
def base_values(space: Space, base_strategy: dict) -> dict[str, Any]:
    """The strategy's own value of every tuned path that it sets (trial 0 of a study)."""
    out = {}
    for p in space.params:
        try:
            value = get_path(base_strategy, p.path)
        except (KeyError, IndexError):
            continue
        if value is not None:
            out[p.path] = value
    return out


def satisfied(space: Space, params: dict, base_strategy: dict | None = None) -> bool:
    """True when every constraint holds for these values (untuned paths from the strategy)."""
    if not space.constraints:
        return True
    values: dict[str, Any] = {}
    for expr in space.constraints:
        tree, paths = compile_constraint(expr)
        for p in paths:
            if p in params:
                values[p] = params[p]
            elif base_strategy is not None:
                values[p] = get_path(base_strategy, p)
            else:
                raise KeyError(f"constraint {expr!r} needs {p}, which is not tuned")
        try:
            if not evaluate_constraint(tree.body, values):
                return False
        except ZeroDivisionError:
            return False
    return True


# ---------------------------------------------------------------------------------- loading
def _number(entry: str, key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpaceError(f"{entry}.{key}: must be a number, got {value!r}")
    return value


def _param(path: str, spec: Any) -> Param:
    entry = f"params.{path}"
    try:
        parse_path(path)
    except ValueError as exc:
        raise SpaceError(f"{entry}: {exc}") from None
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{entry}: expected a mapping {{low, high[, step, log]}} or {{choices: [...]}}")
    unknown = set(spec) - {"low", "high", "step", "log", "choices", "type"}
    if unknown:
        raise SpaceError(f"{entry}: unknown key(s) {sorted(unknown)} "
                         "(use low, high, step, log, choices, type)")
    if "choices" in spec:
        if set(spec) - {"choices"}:
            raise SpaceError(f"{entry}: choices cannot be combined with low/high/step/log/type")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{entry}: choices must be a non-empty list")
        for c in choices:
            if not (c is None or isinstance(c, bool | int | float | str)):
                raise SpaceError(f"{entry}: choice {c!r} is not a number, string, boolean or null")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{entry}: choices repeat a value")
        return Param(path, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{entry}: needs low and high (or choices)")
    low, high = _number(entry, "low", spec["low"]), _number(entry, "high", spec["high"])
    step = None if spec.get("step") is None else _number(entry, "step", spec["step"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{entry}.log: must be true or false")
    kind = spec.get("type")
    if kind not in (None, "int", "float"):
        raise SpaceError(f"{entry}.type: must be int or float, got {kind!r}")
    integer = kind == "int" or (kind is None and all(isinstance(v, int) for v in (low, high, step or 1)))
    if low > high:
        raise SpaceError(f"{entry}: low > high ({low} > {high}): the range is empty")
    if step is not None and step <= 0:
        raise SpaceError(f"{entry}.step: must be > 0, got {step}")
    if step is not None and log:
        raise SpaceError(f"{entry}: step and log cannot be combined")
    if log and low <= 0:
        raise SpaceError(f"{entry}: a log range needs low > 0, got {low}")
    if integer:
        if any(v != int(v) for v in (low, high, step or 1)):
            raise SpaceError(f"{entry}: an int range needs whole low/high/step")
        low, high = int(low), int(high)
        step = None if step is None else int(step)
    if step is not None and step > high - low and high != low:
        raise SpaceError(f"{entry}.step: {step} is larger than the range {low}..{high}")
    return Param(path, low=low, high=high, step=step, log=log, integer=integer)


def _field_errors(strategy: dict, path: str) -> list[str]:
    """Validation problems of the strategy located at `path` itself (or an unknown key there)."""
    try:
        StrategyConfig.model_validate(strategy)
    except ValidationError as exc:
        want = tuple(parse_path(path))
        out = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if loc == want or (err["type"] == "extra_forbidden" and want[:len(loc)] == loc):
                out.append(msg)
            elif err["type"] == "missing" and loc[:-1] == want[:-1]:
                # a rule the strategy leaves out, of which the space sets only some fields
                where = ".".join(map(str, loc))
                out.append(f"sets a rule the strategy does not have, whose {where} is then missing")
        return out
    return []


def _check_param_against(p: Param, base_strategy: dict) -> None:
    try:
        get_path(base_strategy, p.path)
    except IndexError:
        raise SpaceError(f"{p.name}: the strategy's list has no such index") from None
    except KeyError:
        # not set in the strategy: allowed when it is a field the strategy may have
        pass
    for value in p.corners():
        try:
            trial = apply(base_strategy, {p.path: value})
        except KeyError as exc:
            raise SpaceError(f"{p.name}: not a path in the strategy ({exc.args[0]})") from None
        errors = _field_errors(trial, p.path)
        if errors:
            if "Extra inputs" in errors[0]:
                what = "not a strategy field"
            elif errors[0].startswith("sets a rule"):
                what = errors[0]
            else:
                what = f"value {value!r}: {errors[0]}"
            raise SpaceError(f"{p.name}: {what}")


def load_space(path_or_dict: str | Path | Mapping, base_strategy: dict) -> Space:
    """Read and check a space against the strategy mapping; raises SpaceError naming the entry."""
    if isinstance(path_or_dict, Mapping):
        data: Any = dict(path_or_dict)
        source = "<dict>"
    else:
        source = str(path_or_dict)
        try:
            data = yaml.safe_load(Path(path_or_dict).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpaceError(f"cannot read space file {source}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SpaceError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise SpaceError(f"{source}: a space file must be a mapping with params: (and constraints:)")
    unknown = set(data) - {"params", "constraints"}
    if unknown:
        raise SpaceError(f"{sorted(unknown)[0]}: unknown top-level key (use params, constraints)")
    raw_params = data.get("params")
    if not isinstance(raw_params, Mapping) or not raw_params:
        raise SpaceError("params: must map at least one strategy path to a range or choices")
    params = tuple(_param(str(path), spec) for path, spec in raw_params.items())
    for p in params:
        _check_param_against(p, base_strategy)
    raw_cons = data.get("constraints") or []
    if not isinstance(raw_cons, list):
        raise SpaceError("constraints: must be a list of expressions")
    tuned = {p.path for p in params}
    for i, expr in enumerate(raw_cons):
        entry = f"constraints[{i}]"
        if not isinstance(expr, str):
            raise SpaceError(f"{entry}: must be an expression string, got {expr!r}")
        try:
            _, paths = compile_constraint(expr)
        except (SyntaxError, ValueError) as exc:
            raise SpaceError(f"{entry}: cannot parse {expr!r}: {exc}") from None
        for p in paths:
            if p in tuned:
                continue
            try:
                value = get_path(base_strategy, p)
            except (KeyError, IndexError):
                raise SpaceError(f"{entry}: {p} is neither tuned nor set in the strategy") from None
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise SpaceError(f"{entry}: {p} is not a number in the strategy ({value!r})")
        space_one = Space(params, (expr,))
        if not _satisfiable(space_one, base_strategy):
            raise SpaceError(f"{entry}: no point of the space satisfies {expr!r} "
                             f"({SAMPLE_CHECKS} samples tried)")
    space = Space(params, tuple(raw_cons))
    if len(raw_cons) > 1 and not _satisfiable(space, base_strategy):
        raise SpaceError(f"constraints: no point of the space satisfies all of them together "
                         f"({SAMPLE_CHECKS} samples tried)")
    return space


def _satisfiable(space: Space, base_strategy: dict) -> bool:
    rng = random.Random(0)
    # the corners first: a constraint often only holds at an edge of a range
    for pick in (0, -1):
        point = {p.path: p.corners()[pick] for p in space.params}
        if satisfied(space, point, base_strategy):
            return True
    for _ in range(SAMPLE_CHECKS):
        point = {p.path: p.sample(rng) for p in space.params}
        if satisfied(space, point, base_strategy):
            return True
    return False


# ---------------------------------------------------------------------------------- search
def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Ask the trial for a value of every parameter (names are the dotted paths)."""
    out: dict[str, Any] = {}
    for p in space.params:
        if p.choices is not None:
            out[p.path] = trial.suggest_categorical(p.path, list(p.choices))
        elif p.integer:
            out[p.path] = trial.suggest_int(p.path, int(p.low), int(p.high), step=int(p.step or 1),
                                            log=p.log)
        else:
            value = trial.suggest_float(p.path, float(p.low), float(p.high), step=p.step, log=p.log)
            # a stepped value is low + k·step in floats (0.9500000000000001): keep the step's digits
            out[p.path] = round(value, 12) if p.step else value
    return out
