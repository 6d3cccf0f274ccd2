"""spct serve: run the reward server (FastAPI under uvicorn) on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import os

from ..score_scale import SERVE_MAX_NEW_TOKENS
from .common import add_judge_args, add_meta_args, add_model_args, build_grm


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve rewards over HTTP (OpenRLHF /get_reward and native /v1/judge)",
                       description="Serve a GRM to RL pipelines: POST /get_reward (OpenRLHF remote RM), POST /v1/judge "
                                   "(native), GET /health, GET /metrics. Concurrent requests are micro-batched.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key", default=os.environ.get("SPCT_API_KEY"),
                   help="require this key (Authorization: Bearer KEY); default: $SPCT_API_KEY, else none")
    p.add_argument("--max-queue", type=int, default=256, help="waiting requests before answering 503 (default: 256)")
    p.add_argument("--max-batch", type=int, default=32, help="examples per generation batch (default: 32)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits for more requests (default: 10)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request timeout in seconds, queueing included (default: 300)")
    p.add_argument("--max-body-mb", type=float, default=4.0, help="largest accepted request body in MiB (default: 4)")
    add_model_args(p)
    add_judge_args(p, k=1, max_new_tokens=SERVE_MAX_NEW_TOKENS)
    add_meta_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..serve import ServerConfig, create_app

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"warning: serving on {args.host} without an API key; anyone who can reach it can use the model")
    config = ServerConfig(max_queue=args.max_queue, max_batch_examples=args.max_batch, batch_wait_s=args.batch_wait_ms / 1000,
                          timeout_s=args.timeout, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                          api_key=args.api_key, max_k=max(16, args.k))
    app = create_app(build_grm(args), config)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
