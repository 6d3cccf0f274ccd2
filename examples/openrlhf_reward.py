"""How OpenRLHF (>= 0.9.1; checked against 0.11.0) calls spct, shown without OpenRLHF installed.
The flags below are OpenRLHF >= 0.10.2's; older versions call them --remote_rm_url and
--n_samples_per_prompt.

OpenRLHF rewards each rollout as soon as it is generated: one POST per rollout, many at once,
`{"query": [prompt + response], "prompts": [prompt], "labels": [label]}`. `spct serve` regroups
the rollouts of one prompt into one listwise judgment (--group-size, else learned; deadline:
--group-window-ms). In OpenRLHF:

    spct serve --k 2 --group-size 8 &                # 8 = OpenRLHF's --rollout.n_samples_per_prompt
    ... --reward.remote_url http://127.0.0.1:8000/get_reward

Or, in-process (each call is judged alone: OpenRLHF calls the file once per rollout, from
threads; use the server to judge groups together):

    SPCT_MODEL=smollm2-135m ... --reward.remote_url $(python -c "import spct.integrations.openrlhf as m; print(m.__file__)")

This script makes the same calls:
    python examples/openrlhf_reward.py                          # reward_func in-process
    python examples/openrlhf_reward.py --url http://127.0.0.1:8000   # concurrent single-rollout POSTs
(against `spct serve --group-size 2`, this script's 2 rollouts per prompt; without a group size the
server learns it, and until it has, a group waits for its deadline, --group-window-ms)
"""

from __future__ import annotations

import argparse
import asyncio
import os

import httpx

prompt = "<|im_start|>user\nIs it safe to leave a candle burning overnight?<|im_end|>\n<|im_start|>assistant\n"
responses = ["No. Blow it out before you sleep; an unattended flame is a fire risk.<|im_end|>",
             "Sure, candles are fine all night.<|im_end|>"]
queries = [prompt + r for r in responses]


async def per_rollout(url: str) -> list[dict]:
    """OpenRLHF's pattern: every rollout in its own request, all in flight at once."""
    async with httpx.AsyncClient(timeout=180) as client:
        async def post(q: str) -> dict:
            r = await client.post(f"{url}/get_reward", json={"query": [q], "prompts": [prompt], "labels": [""]})
            r.raise_for_status()
            return r.json()

        return await asyncio.gather(*(post(q) for q in queries))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running `spct serve`")
    args = ap.parse_args()
    if args.url:
        for out in asyncio.run(per_rollout(args.url)):
            print(out)  # extra_logs.group_size: how many responses the judgment saw
    else:
        os.environ.setdefault("SPCT_MAX_NEW_TOKENS", "32")
        from spct.integrations.openrlhf import reward_func

        out = reward_func(queries, [prompt] * 2, ["", ""])
        print({k: (v.tolist() if hasattr(v, "tolist") else {n: t.tolist() for n, t in v.items()}) for k, v in out.items()})


if __name__ == "__main__":
    main()
