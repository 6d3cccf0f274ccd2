"""Helpers shared by the CLI-level tests."""

from __future__ import annotations

import json
from pathlib import Path

from spct.cli import main


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_cli(argv: list[str]) -> int:
    """spct's exit code, argparse's own usage errors (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)
