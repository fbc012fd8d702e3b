r"""The translator benchmark (Table 2): MMLU questions translated EN->AR, scored against openai/MMMLU Arabic.

The report's protocol (section 3, "Translator quality" and "Prompting setup"), to the letter:

- ``n`` questions (500 in ``paper``) sampled uniformly from cais/mmlu test with a fixed seed;
- the source is the English **question alone** (not its choices); the reference is the Arabic question
  of the same item in openai/MMMLU AR_XY (same subject and item: :func:`align`);
- one fixed prompt per system (``eval.translation_prompts``), ``{text}`` replaced verbatim by the
  question; greedy decoding;
- the output is scored as the model wrote it (stripped): no chunking, masking, output checks or retries,
  "no post-processing beyond each metric's built-in normalization";
- BLEU (SacreBLEU 13a), ROUGE-L F1 (rouge-score's default tokenizer, the report's) and chrF++, plus our
  Arabic-aware ROUGE-L as an extra column (:mod:`hala.metrics`).

Files keep one item per line: inner line breaks of an output become spaces there (:func:`one_line`),
and the scores are computed on that one-line form, so ``hala metrics --hyp hypotheses.ar.txt --ref
references.ar.txt`` gives the same numbers. Our choice, and not neutral for BLEU in one case:
sacrebleu's 13a tokenizer deletes ``-\n`` (a hyphen ending a line joins the next line) before it maps
the other line breaks to spaces, so an output holding ``co-\nop`` would score as the one token ``coop``
raw and as the two tokens ``co-`` ``op`` here; chrF++ and rouge-score split on any whitespace and are
unaffected.

Both sides come from the prepared (normalised) records of the ``mmlu`` and ``mmmlu`` sources: the
question is the user turn; ``meta`` holds ``subject``, ``choices``, ``index`` and ``subject_position``.
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

from hala.config import TRANSLATION_SYSTEMS
from hala.errors import HalaError
from hala.metrics import translation_metrics
from hala.translate.engines import Engine, GenerationSettings, Message

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
        """The question, then each choice on its own line: what the contamination check looks for.

        The check (:mod:`hala.evaluation.contamination`) searches the training corpora for this text's
        n-grams. Table 2 neither translates nor scores it: its source is the question alone (:func:`align`).
        """
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
    subject and position, e.g. quarantined at preparation). An error when no item aligns at all.
    Each pair is the two questions alone, the report's source and reference.
    """
    arabic = {(item.subject, item.subject_position): item for item in items_from_records(mmmlu_records)}
    result = Alignment(pairs=[], indices=[])
    for item in samples:
        ar = arabic.get((item.subject, item.subject_position))
        if ar is None:
            reason = "no_arabic_item"
        else:
            result.pairs.append((item.question.strip(), ar.question.strip()))
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
    r"""``text`` with every whitespace run (line breaks included) as one space, outer space removed.

    Table 2 writes and scores this form, one item per line. It is what the metrics see, and it is not
    the raw output for BLEU when a line ends in a hyphen: sacrebleu's 13a tokenizer
    (``sacrebleu/tokenizers/tokenizer_13a.py``, 2.6.0) deletes ``-\n`` before turning ``\n`` into a
    space, so ``co-\nop`` is one token, ``coop``, raw but two, ``co-`` ``op``, here. chrF++ and
    rouge-score split on any whitespace and see no difference.
    """
    return " ".join(text.split())


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "system"


def evaluate_system(
    name: str,
    translate_fn: TranslateFn,
    pairs: Sequence[tuple[str, str]],
    out_dir: Path | str,
    ids: Sequence[int] | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """Translate the English side of ``pairs`` with ``translate_fn`` and score it against the Arabic.

    ``translate_fn`` gets all English texts in one list and returns one output per text; ``None``
    (a translation the system could not produce) is scored as an empty hypothesis and counted in
    ``failed``. Writes ``<out_dir>/<name>/``: ``sources.en.txt``, ``hypotheses.ar.txt``,
    ``references.ar.txt`` (line-aligned, one item per line, what was scored), ``prompt.txt`` (when
    given), ``items.jsonl`` (index, source, reference, hypothesis as produced) and ``scores.json``.

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
    for file, lines in (
        ("sources.en.txt", [one_line(s) for s in sources]),
        ("hypotheses.ar.txt", hyps),
        ("references.ar.txt", refs),
    ):
        (folder / file).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if prompt is not None:
        (folder / "prompt.txt").write_text(prompt, encoding="utf-8")
    keys = list(ids) if ids is not None else list(range(len(pairs)))
    with (folder / "items.jsonl").open("w", encoding="utf-8") as f:
        for key, (en, ar), hyp in zip(keys, pairs, outputs, strict=True):
            f.write(
                json.dumps(
                    {"index": key, "source": en, "reference": ar, "hypothesis": hyp}, ensure_ascii=False
                )
            )
            f.write("\n")
    (folder / "scores.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    result["dir"] = str(folder)
    return result


SYSTEMS = TRANSLATION_SYSTEMS


def system_prompt(prompts: Mapping[str, str], system: str) -> str:
    """The fixed Table 2 prompt of ``system`` (the preset's ``eval.translation_prompts``)."""
    if system not in prompts:
        raise TranslationEvalError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    return prompts[system]


def fill_prompt(prompt: str, text: str) -> str:
    """``prompt`` with ``{text}`` replaced verbatim (no format mini-language: braces in text are kept)."""
    return prompt.replace("{text}", text)


def direct_translate_fn(engine: Engine, prompt: str, max_new_tokens: int) -> TranslateFn:
    """A ``translate_fn`` that asks ``engine`` once per text, greedily, and keeps what it wrote (stripped).

    The report's Table 2 setup: one user turn ``prompt`` with ``{text}`` replaced verbatim, no
    chunking, masking, output checks or retries.
    """
    greedy = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0)

    def translate(texts: list[str]) -> list[str | None]:
        conversations: list[list[Message]] = [
            [{"role": "user", "content": fill_prompt(prompt, text)}] for text in texts
        ]
        return [g.text.strip() for g in engine.chat(conversations, greedy)]

    return translate


def run_benchmark(
    system: str,
    translate_fn: TranslateFn,
    prompt: str,
    mmlu_records: pa.Table | Iterable[Mapping[str, Any]],
    mmmlu_records: pa.Table | Iterable[Mapping[str, Any]],
    n: int,
    seed: int,
    out_dir: Path | str,
) -> dict[str, Any]:
    """Table 2 for one system: sample, align, translate, score; the pipeline stage and the CLI call this."""
    alignment = align(sample_questions(mmlu_records, n, seed), mmmlu_records)
    result = evaluate_system(system, translate_fn, alignment.pairs, out_dir, alignment.indices, prompt)
    result["alignment"] = alignment.counts()
    result["prompt"] = prompt
    return result
