"""The settings spine: a settings dataclass is declared once and read from flags or the environment.

Like TRL's own configs, each field of a settings dataclass (`JudgeConfig`, `EngineConfig`) carries
its help text in `metadata={"help": ...}` (and, where the value needs checking, an argparse
`type` or `choices`). `add_dataclass_args` turns the fields into command-line flags,
`from_namespace` reads them back, and `from_env` reads the same fields from `SPCT_<FIELD>`
environment variables (the RL adapters' configuration), so no layer copies a setting field by
field. Nothing here imports spct, so settings dataclasses at any layer can use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: The most judgments per example: k is a sample count that sizes memory, not a free integer.
MAX_K = 4096
#: The most re-samples of a failed judgment: an engine that never writes a score line would otherwise be
#: asked again without end (each retry is a full judgment's tokens).
MAX_RETRIES = 16


def setting(default: Any, help: str, **flag: Any) -> Any:
    """A settings field whose help text (and argparse `type` / `choices`) the command line shows."""
    return dataclasses.field(default=default, metadata={"help": help, **flag})


# -- value checks: argparse types, also applied to environment variables -----------------------


def int_within(text: str, low: int, high: int | None = None) -> int:
    """An integer flag value in low..high (no upper bound without `high`)."""
    value = int(text)
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
    return value


def positive_int(text: str) -> int:
    return int_within(text, 1)


def sample_count(text: str) -> int:
    """--k: judgments per example, 1..MAX_K (each one is held in memory)."""
    return int_within(text, 1, MAX_K)


def retry_count(text: str) -> int:
    """--retries: re-samples of a failed judgment, 0..MAX_RETRIES."""
    return int_within(text, 0, MAX_RETRIES)


def non_negative_int(text: str) -> int:
    return int_within(text, 0)


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def check_values(obj: Any) -> None:
    """Check a settings dataclass's values as its flags check their text: ValueError naming the field.

    So the Python API refuses what the command line would (`k=-1`, `k=2.5`, `k=True`, `temperature=-1`)
    instead of judging nothing or something else.
    """
    for f in dataclasses.fields(obj):
        check, value = f.metadata.get("type"), getattr(obj, f.name)
        if check is None or value is None:
            continue
        kind = "a whole number" if "int" in str(f.type) else "a number"
        try:
            if not isinstance(value, bool) and isinstance(value, int | float) and check(str(value)) == value:
                continue
            problem = f"must be {kind}, got {value!r}"
        except argparse.ArgumentTypeError as e:
            problem = str(e)
        except ValueError:
            problem = f"must be {kind}, got {value!r}"
        raise ValueError(f"{f.name} {problem}")


# -- dataclass fields <-> flags and environment variables ---------------------------------------


def _parser(f: dataclasses.Field, default: Any) -> Callable[[str], Any] | None:
    """How a field's text is read: its declared `type`, else the type of a numeric default (str otherwise)."""
    if "type" in f.metadata:
        return f.metadata["type"]
    return type(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def add_dataclass_args(group: argparse._ActionsContainer, cls: type, names: Iterable[str] | None = None,
                       defaults: Mapping[str, Any] | None = None, helps: Mapping[str, str] | None = None) -> None:
    """One flag per field of `cls` (those in `names`, in that order; default: all): `--field-name`.

    Help, default and checks come from the field; `defaults` and `helps` replace them for one
    command (a smaller token budget for serving, say). A boolean field that defaults to on
    becomes `--no-NAME`, one that defaults to off `--NAME`. The help names the default unless it
    is None or the help already says what the default means.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names or fields:
        f = fields[name]
        value = (defaults or {}).get(name, f.default)
        text = (helps or {}).get(name, f.metadata["help"])
        flag = name.replace("_", "-")
        if isinstance(f.default, bool):
            if value:
                group.add_argument(f"--no-{flag}", dest=name, action="store_false", help=f"do not {text}")
            else:
                group.add_argument(f"--{flag}", dest=name, action="store_true", help=text)
            continue
        if value is not None and "default" not in text:
            text = f"{text} (default: {value})"
        kwargs = {key: v for key, v in f.metadata.items() if key in ("choices", "metavar")}
        group.add_argument(f"--{flag}", dest=name, default=value, type=_parser(f, value), help=text, **kwargs)


def from_namespace(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """`cls` from parsed flags named like its fields; fields a command has no flag for keep their defaults."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


ENV_PREFIX = "SPCT_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _read(f: dataclasses.Field, name: str, text: str) -> Any:
    """A field's value from text (an environment variable, a string keyword), checked like its flag."""
    if isinstance(f.default, bool):
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError(f"{name}={text!r}: expected one of {', '.join(_TRUE + _FALSE)}")
        return text.lower() in _TRUE
    try:
        return (_parser(f, f.default) or str)(text)
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise ValueError(f"{name}={text!r}: {e}") from e


def from_env(cls: type[T], defaults: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
             **overrides: Any) -> T:
    """`cls` from `SPCT_<FIELD>` environment variables (SPCT_MODEL, SPCT_MAX_NEW_TOKENS, ...), checked like the flags.

    Precedence: `overrides` (None is no override; text is read like the variable), then the
    environment, then `defaults`, then the field's own default. A bad value raises ValueError
    naming the variable or keyword.
    """
    environ = os.environ if environ is None else environ
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    values = dict(defaults or {})
    for f in dataclasses.fields(cls):
        var = ENV_PREFIX + f.name.upper()
        text = environ.get(var, "").strip()
        if text:
            values[f.name] = _read(f, var, text)
        value = overrides.get(f.name)
        if value is not None:
            values[f.name] = _read(f, f.name, value) if isinstance(value, str) else value
    return cls(**values)
