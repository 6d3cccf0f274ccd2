"""Deterministic held-out / validation / training splits by a content hash.

Every machine must draw the same split from the same file, whatever the row order or the
Python version, so membership is decided by SHA-256 of each row's canonical JSON (sorted keys,
ids left out): the `heldout` rows with the smallest hashes are held out, then the next
`validation` rows form a validation slice (for model selection and the meta RM's early
stopping), and the rest is training data. Rows with identical content share a hash and so
always land on the same side. `pinned` ids (the rows `spct demo` shows) are held out first.

Held-out rows are never used for training, the meta RM or model selection.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import InputError, InputIssue, id_text, iter_jsonl, write_jsonl, write_text


def content_hash(row: dict[str, Any]) -> str:
    """SHA-256 of the row's canonical JSON without its id: equal content, equal hash."""
    body = {k: v for k, v in row.items() if k != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Split:
    heldout: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    train: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"heldout": len(self.heldout), "validation": len(self.validation), "train": len(self.train)}


def split_rows(rows: list[dict[str, Any]], heldout: int, validation: int = 0,
               pinned: set[str] | frozenset[str] = frozenset()) -> Split:
    """Split rows (each with an 'id') by content hash; see the module docstring."""
    if heldout < len(pinned):
        raise InputError(f"heldout={heldout} is smaller than the {len(pinned)} pinned rows")
    hashes = [content_hash(r) for r in rows]
    missing = pinned - {r["id"] for r in rows}
    if missing:
        raise InputError(f"pinned ids not in the data: {', '.join(sorted(missing)[:5])}")
    # Whole groups of equal content move together, so a duplicate never straddles the split.
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        groups.setdefault(h, []).append(i)
    first = {h for h in groups if any(rows[i]["id"] in pinned for i in groups[h])}
    order = sorted(first) + sorted(h for h in groups if h not in first)
    split, taken = Split(), 0
    for h in order:
        members = [rows[i] for i in groups[h]]
        if taken < heldout:
            split.heldout += members
        elif taken < heldout + validation:
            split.validation += members
        else:
            split.train += members
        taken += len(members)
    return split


def read_rows(path: str | Path, id_prefix: str) -> list[dict[str, Any]]:
    """Every row of a JSONL(.gz) file as a dict with a string id (`{id_prefix}{row index}` when it has none;
    a number becomes a string, as the example reader does)."""
    rows: list[dict[str, Any]] = []
    for index, (lineno, obj) in enumerate(iter_jsonl(path)):
        if isinstance(obj, InputIssue):
            raise InputError(str(obj))
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object")
        try:
            row_id = id_text(obj.get("id", f"{id_prefix}{index}"))
        except InputError as e:
            raise InputError(str(InputIssue(str(path), lineno, e.field, str(e)))) from None
        rows.append({"id": row_id, **{k: v for k, v in obj.items() if k != "id"}})
    return rows


def write_split(split: Split, out_dir: str | Path, source: str) -> dict[str, Any]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("heldout", "validation", "train"):
        write_jsonl(out_dir / f"{name}.jsonl", getattr(split, name))
    info = {"source": source, "rule": "sha256 of canonical row JSON without id; smallest hashes held out",
            **split.summary(), "heldout_ids": [r["id"] for r in split.heldout]}
    write_text(out_dir / "split.json", json.dumps(info, indent=1) + "\n")
    return info
