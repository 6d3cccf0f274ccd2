"""`spct` command line: a thin layer over the library, one module per subcommand.

Each module in COMMANDS exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> exit code`. User errors print one clear line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable

from ..backends.models import ModelNotFound
from ..data import InputError

COMMANDS = ["judge", "demo", "meta-data", "train-meta", "scale", "rft", "sft", "rl", "eval", "compare", "data", "train-scalar", "train-verdict", "probe", "serve"]


def flag_words(message: str) -> str:
    """A library error in CLI words: judging parameters (`max_new_tokens`) become their flags (`--max-new-tokens`)."""
    from ..judge import JudgeConfig

    for name in JudgeConfig.__dataclass_fields__:
        if "_" in name:  # one-word names (k, seed) are too common to rewrite safely
            message = re.sub(rf"\b{name}\b", "--" + name.replace("_", "-"), message)
    return message


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that adds some flags only when that subcommand is parsed or shows --help.

    `spct sft` / `spct rl` generate a flag per field of TRL's configs, and importing TRL takes
    seconds that every other subcommand would pay if all parsers were complete up front.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[Callable[[argparse.ArgumentParser], None]] = []

    def defer(self, add: Callable[[argparse.ArgumentParser], None]) -> None:
        """Call `add(self)` before this parser first parses or formats its help."""
        self._deferred.append(add)

    def _complete(self) -> None:
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spct", description="Generative reward models with Self-Principled Critique Tuning.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "httpx", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not args.verbose else logging.INFO)
    logging.getLogger("spct.backends.vllm").setLevel(logging.INFO)  # its KV-cache line, beside vLLM's own start-up lines
    logging.getLogger("spct.backends.auto").setLevel(logging.INFO)  # --engine auto: the engine it picked, and why
    if not args.verbose:  # transformers' weight-loading bar is noise next to our own progress bar
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        return int(args.func(args) or 0)
    except (InputError, ModelNotFound, OSError) as e:  # unreadable input, unwritable output, no model
        print(f"spct {args.command}: error: {flag_words(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nspct {args.command}: interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
