"""The translator benchmark: MMLU questions translated EN->AR, scored against openai/MMMLU Arabic.

Recipe (HALA report): ``n`` questions sampled uniformly from cais/mmlu (test) with a fixed seed,
translated by the system under test with the preset's prompt (``translator.prompt_en_ar``,
``Translate from English to Arabic: {x}``), aligned to the MMMLU Arabic item with the same subject and
index, and scored with :func:`hala.metrics.translation_metrics`.

Both sides come from the prepared (normalised) records of the ``mmlu`` and ``mmmlu`` sources: the
question is the user turn, ``meta`` holds ``subject``, ``choices`` and ``index`` (the MMLU test row,
which MMMLU keeps in ``Unnamed: 0``). One item's text is the question, then its four choices, one per
line, without letter labels (labels would be free matches for every system), the same on both sides.
Scores are computed on each text with its whitespace runs (line breaks included) collapsed to one
space; the metrics ignore the difference and it keeps ``hyps.txt``/``refs.txt`` one item per line.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa

from hala.errors import HalaError
from hala.metrics import translation_metrics
from hala.translate.engines import Engine
from hala.translate.runner import TranslateSettings, translate_texts

TranslateFn = Callable[[list[str]], Sequence[str | None]]


class TranslationEvalError(HalaError, ValueError):
    """The benchmark cannot be built or scored; the message says which numbers disagree."""


@dataclass(frozen=True)
class McqItem:
    """One multiple-choice item of MMLU or MMMLU, from a normalised record."""

    index: int
    subject: str
    question: str
    choices: tuple[str, ...]
    subject_position: int  # the item's position among its subject's items in the source file

    def text(self) -> str:
        """The text translated and scored: the question, then each choice on its own line."""
        return "\n".join([self.question.strip(), *(c.strip() for c in self.choices)])


@dataclass
class Alignment:
    """Sampled items paired with their Arabic references, and the ones left out by reason."""

    pairs: list[tuple[str, str]]  # (English text to translate, Arabic reference)
    indices: list[int]  # MMLU index of each pair
    unaligned: dict[str, list[int]] = field(default_factory=dict)  # reason -> MMLU indices

    def counts(self) -> dict[str, Any]:
        """``sampled = aligned + sum(unaligned)``, with the unaligned counts per reason."""
        unaligned = {reason: len(indices) for reason, indices in sorted(self.unaligned.items())}
        return {
            "sampled": len(self.pairs) + sum(unaligned.values()),
            "aligned": len(self.pairs),
            "unaligned": unaligned,
        }


def items_from_records(records: pa.Table | Iterable[Mapping[str, Any]]) -> list[McqItem]:
    """Items of normalised ``mmlu``/``mmmlu`` records (a table or row dicts), sorted by index."""
    rows = records.to_pylist() if isinstance(records, pa.Table) else records
    items = []
    for row in rows:
        meta = json.loads(row["meta"]) if isinstance(row["meta"], str) else row["meta"]
        question = next(m["content"] for m in row["messages"] if m["role"] == "user")
        items.append(
            McqItem(
                int(meta["index"]),
                str(meta["subject"]),
                question,
                tuple(meta["choices"]),
                int(meta["subject_position"]),
            )
        )
    items.sort(key=lambda item: item.index)
    for before, after in pairwise(items):
        if before.index == after.index:
            raise TranslationEvalError(
                f"index {before.index} appears twice; pass prepared (deduplicated) records"
            )
    return items


def sample_questions(
    mmlu_records: pa.Table | Iterable[Mapping[str, Any]], n: int, seed: int
) -> list[McqItem]:
    """``n`` items drawn uniformly without replacement, the same for the same seed, in index order.

    Items are ordered by MMLU index before drawing, so the sample does not depend on shard order.
    """
    items = items_from_records(mmlu_records)
    if n <= 0:
        raise TranslationEvalError(f"asked for {n} questions; ask for at least 1")
    if n > len(items):
        raise TranslationEvalError(
            f"asked for {n} questions but only {len(items)} MMLU items are available; "
            "lower eval.mmlu_questions or read more rows"
        )
    positions = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[p] for p in positions]


def align(samples: Sequence[McqItem], mmmlu_records: pa.Table | Iterable[Mapping[str, Any]]) -> Alignment:
    """Pair each sampled MMLU item with the MMMLU item of the same subject and position in the subject.

    MMMLU's unnamed index column restarts for every subject (``hala.sources.mmmlu``), so the key is
    (subject, position among that subject's rows), which is right whether that column is per subject or
    global and whatever order the subjects come in; the subject of every pair is the same by
    construction. Left out (counted, never an error): ``no_arabic_item`` (no MMMLU item at that
    subject and position, e.g. quarantined at preparation) and ``choice_count_mismatch``. An error
    when no item aligns at all.
    """
    arabic = {(item.subject, item.subject_position): item for item in items_from_records(mmmlu_records)}
    result = Alignment(pairs=[], indices=[])
    for item in samples:
        ar = arabic.get((item.subject, item.subject_position))
        if ar is None:
            reason = "no_arabic_item"
        elif len(ar.choices) != len(item.choices):
            reason = "choice_count_mismatch"
        else:
            result.pairs.append((item.text(), ar.text()))
            result.indices.append(item.index)
            continue
        result.unaligned.setdefault(reason, []).append(item.index)
    if not result.pairs:
        raise TranslationEvalError(
            f"none of the {len(samples)} sampled MMLU items has an MMMLU counterpart "
            f"({result.counts()['unaligned']}); check that both sources come from the same test split"
        )
    return result


def one_line(text: str) -> str:
    """``text`` with every whitespace run (line breaks included) as one space, outer space removed."""
    return " ".join(text.split())


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "system"


def evaluate_system(
    name: str,
    translate_fn: TranslateFn,
    pairs: Sequence[tuple[str, str]],
    out_dir: Path | str,
    ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Translate the English side of ``pairs`` with ``translate_fn`` and score it against the Arabic.

    ``translate_fn`` gets all English texts in one list and returns one output per text; ``None``
    (a translation the system could not produce) is scored as an empty hypothesis and counted in
    ``failed``. Writes ``<out_dir>/<name>/``: ``hyps.txt``, ``refs.txt`` (one item per line, what
    was scored: ``hala metrics --hyp hyps.txt --ref refs.txt`` gives the same numbers),
    ``items.jsonl`` (index, source, reference, hypothesis as produced) and ``metrics.json``.

    Returns:
        ``system``, ``n``, ``failed``, ``bleu``, ``chrf``, ``rouge_l``, ``rouge_l_arabic`` and ``dir``.
    """
    if not pairs:
        raise TranslationEvalError(f"{name}: no aligned pairs to evaluate")
    sources = [en for en, _ in pairs]
    outputs = list(translate_fn(list(sources)))
    if len(outputs) != len(sources):
        raise TranslationEvalError(
            f"{name}: translate_fn returned {len(outputs)} outputs for {len(sources)} texts"
        )
    hyps = [one_line(h or "") for h in outputs]
    refs = [one_line(ar) for _, ar in pairs]
    result: dict[str, Any] = {
        "system": name,
        "n": len(pairs),
        "failed": sum(h is None for h in outputs),
        **translation_metrics(hyps, refs),
    }
    folder = Path(out_dir) / _safe_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyps.txt").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    (folder / "refs.txt").write_text("".join(r + "\n" for r in refs), encoding="utf-8")
    keys = list(ids) if ids is not None else list(range(len(pairs)))
    with (folder / "items.jsonl").open("w", encoding="utf-8") as f:
        for key, (en, ar), hyp in zip(keys, pairs, outputs, strict=True):
            f.write(
                json.dumps(
                    {"index": key, "source": en, "reference": ar, "hypothesis": hyp}, ensure_ascii=False
                )
            )
            f.write("\n")
    (folder / "metrics.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    result["dir"] = str(folder)
    return result


def runner_translate_fn(engine: Engine, settings: TranslateSettings) -> TranslateFn:
    """A ``translate_fn`` over :func:`hala.translate.runner.translate_texts` (chunk, mask, check, retry).

    ``settings.prompt`` is the preset's ``translator.prompt_en_ar``. A text the runner quarantines
    comes back as ``None`` (scored empty, counted in ``failed``).
    """

    def translate(texts: list[str]) -> list[str | None]:
        return [r.text for r in translate_texts(engine, texts, settings)]

    return translate
