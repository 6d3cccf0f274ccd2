"""How OpenRLHF calls spct, shown without OpenRLHF installed.

OpenRLHF either posts to the server or loads spct's reward file:
    spct serve --k 2 &                                   # then, in OpenRLHF:
    --remote_rm_url http://127.0.0.1:8000/get_reward
or
    SPCT_MODEL=smollm2-135m --remote_rm_url $(python -c "import spct.integrations.openrlhf as m; print(m.__file__)")

This script makes the same call both ways:
    python examples/openrlhf_reward.py                          # reward_func in-process
    python examples/openrlhf_reward.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import os

import httpx

prompt = "<|im_start|>user\nIs it safe to leave a candle burning overnight?<|im_end|>\n<|im_start|>assistant\n"
responses = ["No. Blow it out before you sleep; an unattended flame is a fire risk.<|im_end|>",
             "Sure, candles are fine all night.<|im_end|>"]
queries = [prompt + r for r in responses]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running `spct serve`")
    args = ap.parse_args()
    if args.url:
        r = httpx.post(f"{args.url}/get_reward", json={"query": queries, "prompts": [prompt] * 2, "labels": ["", ""]}, timeout=600)
        r.raise_for_status()
        print(r.json())
    else:
        os.environ.setdefault("SPCT_MAX_NEW_TOKENS", "32")
        from spct.integrations.openrlhf import reward_func

        out = reward_func(queries, [prompt] * 2, ["", ""])
        print({k: (v.tolist() if hasattr(v, "tolist") else {n: t.tolist() for n, t in v.items()}) for k, v in out.items()})


if __name__ == "__main__":
    main()
