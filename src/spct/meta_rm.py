"""The meta RM: a pointwise scalar model that rates how likely one sampled judgment is right.

Meta-guided voting (DESIGN §1.3) keeps the k_meta judgments the meta RM rates highest and votes
over those only, which filters out the low-quality samples that plain voting lets through.
The model reads the query, the responses in the order that judgment saw them, and the
judgment itself, and outputs one logit; its label is the accuracy rule applied to that
judgment's scores, and it is trained with binary cross-entropy.

Default base: the embedded all-MiniLM-L6-v2 encoder with a fresh scalar head. Any Hugging Face
model that `AutoModelForSequenceClassification` loads with one label works as well (an encoder,
or a causal LM with a classification head). Training runs on the HF `Trainer`.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from .data import (
    Example,
    InputError,
    InputIssue,
    Judgment,
    example_from_dict,
    iter_jsonl,
    write_text,
)
from .policies import Pointwise, single
from .prompts import render_body
from .score_line import MAX_SCORE, MIN_SCORE
from .voting import is_correct, labelled_best, voted_scores

log = logging.getLogger(__name__)

SETTINGS_FILE = "spct_meta_rm.json"
METRICS_FILE = "metrics.json"


def judgment_text(judgment: Judgment) -> str:
    """The judgment as the meta RM reads it: its score line first, so truncation never drops it."""
    shown = [judgment.scores[i] for i in judgment.order] if judgment.scores else None
    head = f"Scores as shown: {', '.join(map(str, shown))}" if shown else "Scores: none (the judgment failed to parse)"
    return f"{head}\n{judgment.text}"


def meta_features(example: Example, judgment: Judgment) -> tuple[str, str]:
    """(judgment, query and responses as that judgment saw them): a text pair for the tokenizer."""
    return judgment_text(judgment), render_body(example, judgment.order)


def meta_label(example: Example, judgment: Judgment) -> int | None:
    """1 when the judgment is right by the accuracy rule, 0 when wrong, None when unlabelled."""
    right = is_correct(judgment.scores, example.best, example.ratings)
    return None if right is None else int(right)


# ---------------------------------------------------------------------------------------------
# Training data: one labelled judgment per line
# ---------------------------------------------------------------------------------------------


def meta_row(example: Example, judgment: Judgment, hinted: bool = False) -> dict[str, Any]:
    label = meta_label(example, judgment)
    if label is None:
        raise InputError(f"example {example.id}: meta RM data needs a 'best' or 'ratings' label")
    return {"key": f"{example.id}|{judgment.sample}|{'h' if hinted else 'u'}", "example": example.to_dict(),
            "judgment": judgment.to_dict(), "label": label, "hinted": hinted}


def pointwise_meta_rows(example: Example, judgments: list[Judgment]) -> list[dict[str, Any]]:
    """Rows for a pointwise judge's single-response judgments (ids "EXAMPLE/INDEX") of one labelled example.

    One judgment of one response has no verdict of its own, so its label asks whether it pushes
    the vote the right way: a judgment of a best response is right when its score is above every
    other response's mean score, a judgment of another response when its score is below every
    best response's mean. Scores are what the vote uses (expected scores under that readout).
    The meta RM reads each one with the response it judged, as the judge saw it.
    """
    best = labelled_best(example.best, example.ratings)
    if not best:
        raise InputError(f"example {example.id}: meta RM data needs a 'best' or 'ratings' label")
    per_response = Pointwise.per_response(example, judgments)
    means = [mean(voted_scores(j)[0] for j in js if j.ok) if any(j.ok for j in js) else None for js in per_response]
    rows = []
    for i, js in enumerate(per_response):
        rivals = [m for o, m in enumerate(means) if m is not None and (o not in best if i in best else o in best)]
        for j in js:
            score = voted_scores(j)[0] if j.ok else None
            right = score is not None and all(score > m if i in best else score < m for m in rivals)
            rows.append({"key": f"{example.id}|{i}|{j.sample}|u", "example": single(example, i).to_dict(),
                         "judgment": j.to_dict(), "label": int(right), "hinted": False})
    return rows


def _meta_judgment(d: Any, n: int) -> Judgment:
    """A Judgment of n responses from a meta-data row, or InputError naming the field."""
    if not isinstance(d, dict):
        raise InputError("'judgment' must be an object", "judgment")
    order = d.get("order")
    if not isinstance(order, list) or sorted(order) != list(range(n)) or any(isinstance(i, bool) for i in order):
        raise InputError(f"'judgment.order' must be a permutation of 0..{n - 1}", "judgment.order")
    scores = d.get("scores")
    if scores is not None and (not isinstance(scores, list) or len(scores) != n
                               or not all(isinstance(s, int) and not isinstance(s, bool) for s in scores)):
        raise InputError(f"'judgment.scores' must be null or {n} integer(s)", "judgment.scores")
    if scores is not None and not all(MIN_SCORE <= s <= MAX_SCORE for s in scores):  # the judge never writes one
        raise InputError(f"'judgment.scores' must be on the judge's {MIN_SCORE}..{MAX_SCORE} scale, got {scores}",
                         "judgment.scores")
    for name in ("text", "principles", "critique", "error"):
        if not isinstance(d.get(name), str) and not (name != "text" and d.get(name) is None):
            raise InputError(f"'judgment.{name}' must be a string" + ("" if name == "text" else " or null"), f"judgment.{name}")
    if not isinstance(d.get("sample"), int):
        raise InputError("'judgment.sample' must be an integer", "judgment.sample")
    known = set(Judgment.__dataclass_fields__)
    return Judgment(**{k: v for k, v in d.items() if k in known})


def read_meta_rows(path: str | Path, include_hinted: bool = False) -> tuple[list[tuple[Example, Judgment, int]], list[InputIssue]]:
    """Read `spct meta-data` output: (example, judgment, label) per good line, issues for the rest.

    Every row is checked here, before any training, so a bad row is a named `file:line [field]`
    issue rather than a crash after the model has trained: the example as any example is
    checked, the judgment's order and scores must fit its responses, the label is 0/1 (or a bool).
    Hinted judgments are left out unless `include_hinted`: the meta RM rates judgments made
    without a hint, and a hinted one is right for a reason it will never see at inference.
    """
    rows, issues = [], []
    for lineno, obj in iter_jsonl(path):
        if isinstance(obj, InputIssue):
            issues.append(obj)
            continue
        try:
            if not isinstance(obj, dict) or not isinstance(obj.get("example"), dict):
                raise InputError("not a meta RM training row (expected {example, judgment, label})", "example")
            try:
                ex = example_from_dict(obj["example"], default_id=f"line{lineno}")
            except InputError as e:
                raise InputError(str(e), f"example.{e.field}" if e.field else "example") from None
            j = _meta_judgment(obj.get("judgment"), len(ex.responses))
            label = obj.get("label")
            if label not in (0, 1) or isinstance(label, float):  # 1.7 is no label; our writer never writes a float
                raise InputError(f"'label' must be 0 or 1 (or a boolean), got {label!r}", "label")
        except InputError as e:
            issues.append(InputIssue(str(path), lineno, e.field, str(e)))
            continue
        if obj.get("hinted") and not include_hinted:
            continue
        rows.append((ex, j, int(label)))
    return rows, issues


def _query_of(example: Example) -> str:
    """The id of the example a row came from: a pointwise row's "EXAMPLE/INDEX" belongs to EXAMPLE."""
    return example.id.rsplit("/", 1)[0] if len(example.responses) == 1 else example.id


def split_by_example(rows: Sequence[tuple[Example, Judgment, int]], eval_fraction: float, seed: int):
    """Hold out whole examples, so no query's judgments sit on both sides of the split."""
    ids = sorted({_query_of(ex) for ex, _, _ in rows})
    random.Random(seed).shuffle(ids)
    n_eval = round(len(ids) * eval_fraction)
    if eval_fraction > 0 and len(ids) >= 2:
        n_eval = min(max(1, n_eval), len(ids) - 1)
    held = set(ids[:n_eval])
    return [r for r in rows if _query_of(r[0]) not in held], [r for r in rows if _query_of(r[0]) in held]


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def default_base() -> str:
    from .backends.models import embedded_encoder_dir

    return str(embedded_encoder_dir())


class MetaRM:
    """A scalar judgment rater; `score` plugs into GenerativeRewardModel as its meta_scorer."""

    def __init__(self, path: str | Path | None = None, *, device: str | None = None, max_length: int | None = None,
                 batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = str(path or default_base())
        settings_file = Path(self.path) / SETTINGS_FILE
        settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path, num_labels=1).to(self.device)
        if self.tokenizer.pad_token is None:  # causal LMs: pad with EOS, and tell the head where it is
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        limit = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_length = min(max_length or settings.get("max_length", 512), limit)
        self.batch_size = batch_size

    def encode(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        first, second = zip(*pairs, strict=True) if pairs else ((), ())
        return self.tokenizer(list(first), list(second), truncation="longest_first", max_length=self.max_length)

    @torch.inference_mode()
    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.model.eval()
        out: list[float] = []
        for b in range(0, len(pairs), self.batch_size):
            enc = self.tokenizer.pad(self.encode(pairs[b : b + self.batch_size]), return_tensors="pt").to(self.device)
            logits = self.model(**enc).logits[:, 0].float()
            out += torch.sigmoid(logits).tolist()
        return out

    def score(self, example: Example, judgments: list[Judgment]) -> list[float]:
        """Probability that each judgment is right; a failed judgment gets 0 (it is never voted anyway)."""
        ok = [i for i, j in enumerate(judgments) if j.ok]
        probs = self.probabilities([meta_features(example, judgments[i]) for i in ok])
        scores = [0.0] * len(judgments)
        for i, p in zip(ok, probs, strict=True):
            scores[i] = p
        return scores

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(d)
        self.tokenizer.save_pretrained(d)
        write_text(d / SETTINGS_FILE, json.dumps({"max_length": self.max_length, "base": self.path}, indent=2) + "\n")


def evaluate(meta: MetaRM, rows: Sequence[tuple[Example, Judgment, int]]) -> dict[str, Any]:
    """Held-out ROC-AUC and accuracy at 0.5, with the majority-class accuracy to compare against."""
    from sklearn.metrics import roc_auc_score

    if not rows:
        return {"n": 0, "auc": None, "accuracy": None, "majority_accuracy": None, "positive_rate": None}
    labels = [label for _, _, label in rows]
    probs = meta.probabilities([meta_features(ex, j) for ex, j, _ in rows])
    positive = sum(labels) / len(labels)
    return {
        "n": len(rows),
        "auc": float(roc_auc_score(labels, probs)) if 0 < sum(labels) < len(labels) else None,
        "accuracy": sum((p > 0.5) == bool(y) for p, y in zip(probs, labels, strict=True)) / len(rows),
        "majority_accuracy": max(positive, 1 - positive),
        "positive_rate": positive,
    }


def _bce_trainer_class():
    from transformers import Trainer

    class BCETrainer(Trainer):
        """The HF Trainer with a binary cross-entropy loss on the single logit."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels").float()
            outputs = model(**inputs)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(outputs.logits[:, 0].float(), labels)
            return (loss, outputs) if return_outputs else loss

    return BCETrainer


def train_meta_rm(
    rows: Sequence[tuple[Example, Judgment, int]],
    output_dir: str | Path,
    *,
    base: str | None = None,
    epochs: float = 3.0,
    max_steps: int = -1,
    learning_rate: float = 5e-5,
    batch_size: int = 16,
    max_length: int = 512,
    eval_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a meta RM on labelled judgments, save it to `output_dir`, return held-out metrics."""
    from transformers import DataCollatorWithPadding, TrainingArguments

    if not rows:
        raise InputError("no meta RM training rows")
    train_rows, eval_rows = split_by_example(rows, eval_fraction, seed)
    meta = MetaRM(base, max_length=max_length, batch_size=batch_size)
    enc = meta.encode([meta_features(ex, j) for ex, j, _ in train_rows])
    # A list of feature dicts is a map-style dataset the Trainer and the padding collator accept.
    train_set = [{**{name: values[i] for name, values in enc.items()}, "labels": float(label)}
                 for i, (_, _, label) in enumerate(train_rows)]
    out = Path(output_dir)
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        warmup_steps=0,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        seed=seed,
        use_cpu=meta.device == "cpu",
        disable_tqdm=True,
    )
    trainer = _bce_trainer_class()(model=meta.model, args=args, train_dataset=train_set,
                                   data_collator=DataCollatorWithPadding(meta.tokenizer))
    result = trainer.train()
    shutil.rmtree(out / "trainer", ignore_errors=True)  # nothing is checkpointed; the model is saved below
    meta.save(out)
    metrics = {
        "base": meta.path if base else "embedded all-MiniLM-L6-v2",
        "train_rows": len(train_rows),
        "train_examples": len({ex.id for ex, _, _ in train_rows}),
        "train_positive_rate": sum(label for _, _, label in train_rows) / len(train_rows) if train_rows else None,
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "held_out": evaluate(meta, eval_rows),
    }
    write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics
