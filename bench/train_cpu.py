"""SPCT training end to end on CPU: RFT -> SFT -> short GRPO on the embedded SmolLM2-135M.

Data is a verifiable preference set built from reasoning-gym's `gsm_symbolic` (seeded): each
example is a word problem with two candidate answers, the correct one and a nearby wrong one,
so the label comes from checking the answer (as the paper's MATH-derived data does). Train and
held-out splits use different generator seeds.

The held-out split is judged before and after training at k = 1 (greedy) and k = 4 (voting),
with the score line constrained; the unconstrained figures come from the free-writing phase of
the same run (a judgment counts as parsed unconstrained when its own text parsed without the
forced score line, which is exactly what JudgeConfig(constrain=False) would have returned).
Every stage writes into OUT and is skipped on a rerun when its output exists, so a stopped run
resumes.

    nice -n 10 python bench/train_cpu.py --out /tmp/spct-train-cpu
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from spct.backends.transformers import TransformersBackend
from spct.data import Example, Reward, iter_jsonl, read_examples, write_jsonl
from spct.jobs import judge_file
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.train.rft import RFTConfig, run_rft
from spct.train.rl import RLSettings, train_rl
from spct.train.sft import SFTSettings, train_sft
from spct.voting import vote


def build_split(size: int, seed: int) -> list[Example]:
    import reasoning_gym

    rng = random.Random(seed)
    out = []
    for i, item in enumerate(reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed)):
        answer = int(item["answer"])
        wrong = answer + rng.choice([-1, 1]) * rng.randint(1, max(2, abs(answer) // 5))
        responses = [f"The answer is {answer}.", f"The answer is {wrong}."]
        best = 0
        if rng.random() < 0.5:
            responses.reverse()
            best = 1
        out.append(Example(f"gsm{seed}-{i}", item["question"], responses, best=[best], domain="math"))
    return out


def evaluate(model_dir: str, examples: list[Example], out_dir: Path, max_new_tokens: int, batch: int) -> dict:
    """Parse rates and strict accuracy at k = 1 and k = 4, constrained and unconstrained."""
    backend = TransformersBackend(model_dir, batch_size=batch)
    by_id = {ex.id: ex for ex in examples}
    row: dict = {}
    for k in (1, 4):
        grm = GenerativeRewardModel(backend, JudgeConfig(k=k, max_new_tokens=max_new_tokens, constrain=True))
        judge_file(grm, examples, out_dir / f"k{k}.jsonl", k=k, batch_size=max(1, batch // k), progress=False)
        # Read the whole file back: a resumed run's earlier rows count too.
        rewards = [Reward.from_dict(obj) for _, obj in iter_jsonl(out_dir / f"k{k}.jsonl")]
        judgments = [j for r in rewards for j in r.judgments]
        free_correct = 0
        for r in rewards:
            ex = by_id[r.id]
            own = [j for j in r.judgments if j.ok and not j.forced]
            free_correct += bool(vote(r.id, own, len(ex.responses), best=ex.best).correct)
        row[f"k{k}"] = {
            "examples": len(rewards),
            "parse_constrained": round(sum(j.ok for j in judgments) / len(judgments), 3),
            "parse_unconstrained": round(sum(j.ok and not j.forced for j in judgments) / len(judgments), 3),
            "acc_constrained": round(sum(bool(r.correct) for r in rewards) / len(rewards), 3),
            "acc_unconstrained": round(free_correct / len(rewards), 3),
            "ties_or_failures": sum(r.best is None for r in rewards),
        }
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/spct-train-cpu")
    p.add_argument("--train", type=int, default=150)
    p.add_argument("--heldout", type=int, default=40)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--sft-epochs", type=float, default=1.0)
    p.add_argument("--sft-lr", type=float, default=5e-5)
    p.add_argument("--rl-steps", type=int, default=30)
    p.add_argument("--rl-lr", type=float, default=2e-6)
    p.add_argument("--batch", type=int, default=16, help="sequences per generate call")
    p.add_argument("--eval-sft", action="store_true", help="also judge the held-out split with the SFT model")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log: dict = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    log["command_args"] = vars(args)

    def save() -> None:
        (out / "results.json").write_text(json.dumps(log, indent=2) + "\n")

    def stage(name: str, fn):
        if name in log:
            print(f"[{name}] done earlier: {log[name]}", flush=True)
            return
        t0 = time.perf_counter()
        result = fn()
        log[name] = {"result": result, "wall_s": round(time.perf_counter() - t0, 1)}
        save()
        print(f"[{name}] {log[name]}", flush=True)

    if not (out / "train.jsonl").exists():
        write_jsonl(out / "train.jsonl", (e.to_dict() for e in build_split(args.train, seed=1001)))
        write_jsonl(out / "heldout.jsonl", (e.to_dict() for e in build_split(args.heldout, seed=2002)))
    train, _ = read_examples(out / "train.jsonl")
    heldout, _ = read_examples(out / "heldout.jsonl")
    mnt = args.max_new_tokens

    stage("eval_base", lambda: evaluate("smollm2-135m", heldout, out / "eval_base", mnt, args.batch))

    def rft():
        grm = GenerativeRewardModel(TransformersBackend("smollm2-135m", batch_size=args.batch),
                                    JudgeConfig(max_new_tokens=mnt, constrain=True))
        return run_rft(grm, train, out / "rft", RFTConfig(batch_size=max(1, args.batch // 3)), progress=False).to_dict()

    stage("rft", rft)
    stage("sft", lambda: train_sft("smollm2-135m", out / "rft", out / "sft", SFTSettings(), trl_overrides=dict(
        num_train_epochs=args.sft_epochs, learning_rate=args.sft_lr, per_device_train_batch_size=4,
        gradient_accumulation_steps=1, max_length=1024, use_cpu=True, logging_steps=1)))
    if args.eval_sft:
        stage("eval_sft", lambda: evaluate(str(out / "sft"), heldout, out / "eval_sft", mnt, args.batch))
    stage("rl", lambda: train_rl(str(out / "sft"), train, out / "rl", RLSettings(), trl_overrides=dict(
        max_steps=args.rl_steps, gradient_accumulation_steps=1, learning_rate=args.rl_lr, max_completion_length=mnt,
        use_cpu=True, logging_steps=1)))
    stage("eval_rl", lambda: evaluate(str(out / "rl"), heldout, out / "eval_rl", mnt, args.batch))

    print("\n| model | k | parse (constrained) | parse (unconstrained) | acc (constrained) | acc (unconstrained) |")
    print("|---|---|---|---|---|---|")
    for name in ("eval_base", "eval_sft", "eval_rl"):
        if name not in log:
            continue
        for k in ("k1", "k4"):
            m = log[name]["result"][k]
            print(f"| {name[5:]} | {k[1:]} | {m['parse_constrained']:.3f} | {m['parse_unconstrained']:.3f} | "
                  f"{m['acc_constrained']:.3f} | {m['acc_unconstrained']:.3f} |")


if __name__ == "__main__":
    main()
