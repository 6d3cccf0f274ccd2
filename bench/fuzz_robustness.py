"""Robustness figures (issues 13 and 22): the fuzz properties of tests/test_fuzz.py at a larger size.

Runs hypothesis with many more examples than the test suite does and counts what went through:
input lines (lone surrogates, integers too large for a float or for Python to read, oversized
lines and disguised markers among them), result rows, named issues, judgments and parse failures,
engine texts parsed, server requests by status, Python API calls (judged or refused by name) and
disguised markers escaped. Any crash or lost line fails a property, and hypothesis then prints
the smallest input that shows it (and this script exits non-zero). No model: the fake engine only.

    nice -n 19 python bench/fuzz_robustness.py [--pipeline 400] [--parser 3000] [--server 200] [--api 1000] [--markers 3000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_fuzz import (  # noqa: E402 - the shared strategies and properties
    SERVER_STATUSES,
    check_api_example,
    check_disguised_marker,
    check_engine_text,
    disguised_markers,
    engine_texts,
    example_args,
    hostile_client,
    input_lines,
    judge_args,
    run_pipeline,
    server_bodies,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", type=int, default=400, help="input files through reader -> judge -> writer")
    ap.add_argument("--parser", type=int, default=3000, help="engine texts through the parser")
    ap.add_argument("--server", type=int, default=200, help="request bodies at the server")
    ap.add_argument("--api", type=int, default=1000, help="Example arguments and judge calls through the Python API")
    ap.add_argument("--markers", type=int, default=3000, help="marker names disguised by look-alikes and invisible characters")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    totals: Counter = Counter()
    base = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    t0 = time.perf_counter()

    @settings(max_examples=args.pipeline, **base)
    @given(input_lines, st.lists(engine_texts, max_size=3))
    def pipeline(lines, engine):
        totals["pipeline_cases"] += 1
        totals.update(run_pipeline(lines, engine))

    @settings(max_examples=args.parser, **base)
    @given(engine_texts, st.integers(1, 4))
    def parser(text, n):
        totals["parser_cases"] += 1
        totals["parsed_ok"] += check_engine_text(text, n)

    client = hostile_client()

    @settings(max_examples=args.server, **base)
    @given(server_bodies)
    def server(request):
        path, body = request
        r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        totals[f"server_{r.status_code}"] += 1
        assert r.status_code in SERVER_STATUSES, r.text

    @settings(max_examples=args.api, **base)
    @given(example_args(), judge_args)
    def api(example, call):
        totals[f"api_{check_api_example(example, call)}"] += 1

    @settings(max_examples=args.markers, **base)
    @given(disguised_markers())
    def markers(text):
        check_disguised_marker(text)
        totals["markers_escaped"] += 1

    pipeline()
    parser()
    server()
    api()
    markers()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "cases": totals["pipeline_cases"] + totals["parser_cases"] + totals["markers_escaped"]
        + sum(v for k, v in totals.items() if k.startswith(("server_", "api_"))),
        "crashes": 0,  # a crash would have failed a property above
        # Every non-blank line must be a result row, a named issue, or in a file refused by line
        # (a single-response rating off the score scale); run_pipeline asserts it per case.
        "lines_lost": totals["lines"] - totals["blank_lines"] - totals["results"] - totals["issues"] - totals["refused_lines"],
        **dict(sorted(totals.items())),
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(cpu.ru_utime + cpu.ru_stime, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
