"""TRL's own configs on the command line of `spct sft` / `spct rl`: one flag per `SFTConfig` / `GRPOConfig` field.

The flags are TRL's: transformers' `HfArgumentParser` makes them from the config dataclass (type,
choices, both `--learning_rate` and `--learning-rate`), so spct declares no TRL field itself. spct
only adds its defaults where it deliberately differs (`SFT_DEFAULTS`, `GRPO_DEFAULTS`), short
aliases (`--lr`), a one-line help, and `--config FILE.yaml` / `--trl FIELD=VALUE`, which win over
the flags. The flags are built when the subcommand runs (`CommandParser.defer`): importing TRL
takes seconds that `spct judge` should not pay, and a base install without TRL still shows `--help`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data import InputError

#: spct's short names of TRL fields (older spct flags; `--lr` is shorter than `--learning-rate`).
ALIASES: dict[str, tuple[str, ...]] = {
    "learning_rate": ("--lr",),
    "num_train_epochs": ("--epochs",),
    "gradient_accumulation_steps": ("--grad-accum",),
}

#: Flags without a value that set a TRL field: (dest, value, help).
SWITCHES: dict[str, tuple[str, Any, str]] = {
    "--cpu": ("use_cpu", True, "train on CPU even when a GPU is present (--use-cpu)"),
}

#: One-line help where spct's default needs its reason.
HELPS: dict[str, str] = {
    "bf16": "bf16 mixed precision (spct's default: on a GPU unless --cpu)",
    "save_steps": "checkpoint every N steps into the output folder, a rerun resuming from the newest (0: none)",
    "seed": "seeds the data order and the trainer",
    "max_steps": "stop after N optimizer steps (overrides --epochs; -1: off)",
    "logging_steps": "log every N optimizer steps",
}


class TRLHelpFormatter(argparse.HelpFormatter):
    """Lists a flag's spellings once with one value name (`--lr, --learning-rate FLOAT`); TRL's underscore
    spellings (`--learning_rate`) work but are not listed beside their dashed twins."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        shown = [s for s in action.option_strings if "_" not in s or s.replace("_", "-") not in action.option_strings]
        if action.nargs == 0:
            return ", ".join(shown)
        return f"{', '.join(shown)} {self._format_args(action, self._get_default_metavar_for_optional(action))}"


def _one_line(text: str | None) -> str:
    """TRL's help text cut to its first sentence (argparse's `%%` escapes kept whole)."""
    text = " ".join((text or "").replace("%%", "%").split())
    return text.split(". ")[0].rstrip(".").replace("%", "%%")


def _metavar(action: argparse.Action) -> str:
    if action.choices:
        return "CHOICE"
    return {"int": "INT", "float": "FLOAT", "string_to_bool": "BOOL"}.get(getattr(action.type, "__name__", ""), "VALUE")


def add_trl_args(p: argparse.ArgumentParser, config_name: str, defaults: Mapping[str, Any],
                 aliases: Mapping[str, tuple[str, ...]] | None = None, switches: Mapping[str, tuple[str, Any, str]] | None = None,
                 helps: Mapping[str, str] | None = None) -> None:
    """Every field of TRL's `config_name` as a flag of `p`, with spct's `defaults`, short `aliases`, `switches`
    (value-less flags) and `helps`; the fields spct names come first, in their own group, then `--config`
    and `--trl`. All are added when `p` first parses or shows its help (`CommandParser.defer`).
    """
    aliases = {**ALIASES, **(aliases or {})}
    switches = {**SWITCHES, **(switches or {})}
    helps = {**HELPS, **(helps or {})}

    def add(parser: argparse.ArgumentParser) -> None:
        named = parser.add_argument_group(f"training: the TRL {config_name} fields spct sets or names")
        passed = parser.add_argument_group(f"TRL {config_name} from a file or FIELD=VALUE (these win over every flag)")
        passed.add_argument("--config", default=None, metavar="YAML",
                            help=f"YAML mapping of TRL {config_name} fields (e.g. `lr_scheduler_type: cosine`)")
        passed.add_argument("--trl", action="append", default=[], metavar="FIELD=VALUE",
                            help=f"one TRL {config_name} field, e.g. --trl warmup_steps=0.1 (repeatable; wins over --config)")
        rest = parser.add_argument_group(f"TRL {config_name}: every other field (TRL's help, first sentence)")
        try:
            import trl
            from transformers import HfArgumentParser
        except ImportError:
            named.description = f"install spct[train] for the flags of every TRL {config_name} field"
            return
        mine = {dest for dest, _, _ in switches.values()} | set(aliases) | set(defaults) | set(helps)
        parser.set_defaults(**defaults)  # for the switches below; the generated flags get theirs one by one
        for action in HfArgumentParser(getattr(trl, config_name), add_help=False)._actions:
            if action.dest == "output_dir":  # -o sets it
                continue
            action.option_strings = [*aliases.get(action.dest, ()), *action.option_strings]
            action.default = defaults.get(action.dest, action.default)
            if action.nargs == 0:  # TRL's `--no-X` twin of a field that is on by default: `--X false` says the same
                action.help = argparse.SUPPRESS
            else:
                action.metavar = _metavar(action)
                action.help = helps.get(action.dest) or _one_line(action.help)
                if action.default is not None:
                    action.help += f" (default: {action.default})"
            (named if action.dest in mine else rest)._add_action(action)
        for flag, (dest, value, text) in switches.items():
            named.add_argument(flag, dest=dest, action="store_const", const=value, help=text)

    p.defer(add)


def trl_fields(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The TRL fields of the parsed flags, with --config and --trl over them (typed by the config dataclass;
    unknown fields are an error). -o is `output_dir`, so it is not among them."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)
              if f.init and f.name != "output_dir" and hasattr(args, f.name)}
    return {**values, **trl_overrides(args, config_cls)}


def trl_overrides(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The TRL fields set by --config and --trl, typed by the config dataclass; unknown fields are an error."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    out: dict[str, Any] = {}
    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise InputError(f"--config {path}: no such file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise InputError(f"--config {path}: expected a mapping of {config_cls.__name__} fields")
        out.update(loaded)
    flat: list[str] = []
    for item in args.trl:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--trl {item!r}: expected FIELD=VALUE")
        flat += [f"--{key}", value]
    bad = sorted((set(out) | {x[2:] for x in flat[::2]}) - known)
    if bad:
        raise InputError(f"unknown TRL {config_cls.__name__} field(s): {', '.join(bad)}")
    if flat:
        from transformers import HfArgumentParser

        parsed, _ = HfArgumentParser(config_cls).parse_known_args(["--output_dir", "unused", *flat])
        out.update({key[2:]: getattr(parsed, key[2:]) for key in flat[::2]})
    return out
