"""spct serve: run one of spct's servers (FastAPI under uvicorn) on 127.0.0.1 by default.

`--api reward` (default) serves rewards from a GRM; `--api openai` serves the engine itself as an
OpenAI-compatible chat server. Both take the same engine flags and the same host, key,
body-size and request-deadline plumbing; the judging and batching flags are the reward API's.
"""

from __future__ import annotations

import argparse
import os

from ..data import InputError
from ..defaults import SERVE_MAX_NEW_TOKENS
from .common import (
    add_judge_args,
    add_meta_args,
    add_model_args,
    body_size_mb,
    build_backend,
    build_grm,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
)

# The HTTP APIs `spct serve` speaks: spct's reward endpoints, or OpenAI's chat completions (the name
# says which protocol a client must speak, as `--guided` names a server's dialect).
API_CHOICES = ("reward", "openai")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve rewards over HTTP (OpenRLHF /get_reward and native /v1/judge), or the "
                                     "model as an OpenAI-compatible chat server (--api openai)",
                       description="Serve a GRM to RL pipelines: POST /get_reward (OpenRLHF remote RM), POST /v1/judge "
                                   "and /v1/rollout (native), GET /health, GET /metrics (Prometheus text; /metrics/json: the same as JSON). "
                                   "Concurrent requests are micro-batched. With --api openai, serve the model itself at "
                                   "POST /v1/chat/completions and GET /v1/models instead.")
    p.add_argument("--api", choices=API_CHOICES, default="reward",
                   help="what to serve: reward (default): rewards from the GRM, every flag below applies; openai: the "
                        "model as an OpenAI-compatible chat server (/v1/chat/completions with spct's score-line "
                        "extension, /v1/models, /health) for `--engine openai` clients and verl's reward router; of "
                        "the flags below only the model, engine, host, port, key, body-size and deadline ones apply")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; on a loopback address, requests must "
                        "name 127.0.0.1, localhost or [::1] in their Host header)")
    p.add_argument("--port", type=port_number, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key", default=os.environ.get("SPCT_API_KEY"),
                   help="require this key (Authorization: Bearer KEY); default: $SPCT_API_KEY, else none")
    p.add_argument("--max-queue", type=positive_int, default=16384,
                   help="requests waiting for a batch before --when-full applies (default: 16384: OpenRLHF sends "
                        "a rollout batch, by default 1024 prompts, x samples per prompt at once; room for 16)")
    p.add_argument("--when-full", default="wait", choices=("wait", "reject"),
                   help="past --max-queue, a request that joins open groups is still taken; any other waits for room "
                        "within its timeout (default; OpenRLHF cannot back off) or is refused with 503 + Retry-After "
                        "(reject)")
    p.add_argument("--max-batch", type=positive_int, default=32, help="examples per generation batch (default: 32)")
    p.add_argument("--batch-wait-ms", type=non_negative_float, default=10.0, help="how long a batch waits for more requests (default: 10)")
    p.add_argument("--group-size", type=positive_int, default=None,
                   help="/get_reward: G, the responses sampled per prompt (OpenRLHF's --rollout.n_samples_per_prompt); "
                        "a prompt's group is judged as soon as it holds G. A request's own group_size wins; without "
                        "either, G is learned from arrivals, and until then a group waits for its deadline")
    p.add_argument("--group-window-ms", type=non_negative_float, default=60000.0,
                   help="/get_reward: a prompt's group is judged at the latest this long after its first response "
                        "arrived (default: 60000, for rollouts spread over tens of seconds; keep it well below "
                        "--timeout; 0 groups only what arrives together)")
    p.add_argument("--max-group-size", type=positive_int, default=64,
                   help="/get_reward: responses per judgment at most, up to 64; larger groups are judged in parts "
                        "(default: 64)")
    p.add_argument("--timeout", type=positive_float, default=150.0,
                   help="per-request timeout in seconds, queueing included (default: 150, below OpenRLHF's 180 s)")
    p.add_argument("--max-body-mb", type=body_size_mb, default=4.0,
                   help="largest accepted request body in MiB, chunked or not, at most 1024 (default: 4)")
    p.add_argument("--request-deadline", type=positive_float, default=10.0,
                   help="seconds a client has to send a whole request (headers and body); slower ones are "
                        "disconnected (default: 10)")
    add_model_args(p)
    add_judge_args(p, k=1, max_new_tokens=SERVE_MAX_NEW_TOKENS)
    add_meta_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..serve import ServerConfig, create_app, create_chat_app
    from ..serve.guard import LOOPBACK_HOSTS
    from ..serve.protocol import MAX_RESPONSES

    if not 1 <= args.max_group_size <= MAX_RESPONSES:  # checked before the model loads
        raise InputError(f"--max-group-size must be in 1..{MAX_RESPONSES}, got {args.max_group_size}")
    if args.group_window_ms / 1000 >= args.timeout:
        raise InputError(f"--group-window-ms {args.group_window_ms:g} must be below --timeout ({args.timeout:g} s): "
                         "a group waiting that long would time out before it is judged")

    loopback = args.host in LOOPBACK_HOSTS
    if not loopback and not args.api_key:
        print(f"warning: serving on {args.host} without an API key; anyone who can reach it can use the model")
    config = ServerConfig(max_queue=args.max_queue, max_batch_examples=args.max_batch, batch_wait_s=args.batch_wait_ms / 1000,
                          group_window_s=args.group_window_ms / 1000, group_size=args.group_size,
                          max_group_size=args.max_group_size,
                          when_full=args.when_full, timeout_s=args.timeout, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                          api_key=args.api_key, max_k=max(16, args.k),
                          # On loopback only this machine's names are real; any other Host is a rebound DNS name.
                          allowed_hosts=LOOPBACK_HOSTS if loopback else None, request_deadline_s=args.request_deadline)
    app = create_chat_app(build_backend(args), args.model, config) if args.api == "openai" else create_app(build_grm(args), config)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **config.uvicorn_options())
    return 0
