"""Benchmark contamination: word n-gram overlap between the training corpora and the evaluation items.

Before evaluating, every training text is checked against every benchmark item; an item is
*contaminated* when any of its word n-grams also occurs in some training text. The report per
benchmark feeds the ``max_contamination`` promotion gate (:mod:`hala.evaluation.gates`).

**Normalisation** (both sides, :func:`normalise_for_overlap`): Unicode NFKC (presentation forms and
ligatures to letters, full-width to ASCII), case folding, Arabic diacritics and Quranic marks and the
tatweel removed, alef forms ``أ إ آ ٱ`` to ``ا``, alef maqsura ``ى`` and Persian ``ی`` to ``ي``, ta
marbuta ``ة`` to ``ه``, Arabic-Indic and Persian digits to ASCII digits; words are then the runs of
Unicode letters and digits, so all punctuation (``، ؛ ؟`` included) and ``_`` are dropped.

**n** (default 8): GPT-3 used 13-grams (its N was the 5th-percentile item length, clamped to 8-13).
Arabic attaches conjunctions, prepositions and the article to words, so an Arabic item has fewer
words than its English source and a 13-gram misses short items; 8 is the lower end of that range.
Pass ``n=13`` for the GPT-3 setting.

**Short items** (fewer than ``n`` words) are checked as one n-gram of their own length (the whole
item must appear contiguously in a training text) when they have at least ``min_words`` words;
shorter ones are skipped and counted as ``skipped_short`` (a two-word item matches almost any
corpus), empty ones as ``skipped_empty``. ``items = checked + skipped_short + skipped_empty``.

**Memory**: the set is built from the benchmark side (a few million n-grams at most, 64-bit hashes,
one "seen" flag each); the training texts are streamed in batches and never stored, so memory does
not grow with the corpus. Word hashes are Python's 64-bit string hash, combined per n-gram with a
multiply-xor chain and MurmurHash3's finaliser: a false match needs a 64-bit collision. They differ
between processes, so hashes are never saved; a scan keeps one flag per benchmark n-gram, in an
order that does not depend on them, so scans of different shards (other processes, saved with
:meth:`ContaminationScan.save`) merge with :meth:`ContaminationScan.merge`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hala.metrics import strip_arabic_marks
from hala.sources.columnar import fmix64

DEFAULT_N = 8
DEFAULT_MIN_WORDS = 4
_WORD = re.compile(r"\w+")  # after "_" became a space: runs of Unicode letters and digits
# Single-character spelling unifications; chained str.replace runs in C (str.translate with a dict
# takes a slow per-character path on non-ASCII text).
_UNIFY: tuple[tuple[str, str], ...] = (
    ("أ", "ا"),
    ("إ", "ا"),
    ("آ", "ا"),
    ("ٱ", "ا"),
    ("ى", "ي"),
    ("ی", "ي"),
    ("ة", "ه"),
    *((chr(0x0660 + d), str(d)) for d in range(10)),
    *((chr(0x06F0 + d), str(d)) for d in range(10)),
)
_MUL = np.uint64(0x9E3779B97F4A7C15)


def normalise_for_overlap(text: str) -> str:
    """``text`` normalised as described in the module docstring, words joined by single spaces."""
    return " ".join(overlap_words(text))


def overlap_words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    text = strip_arabic_marks(unicodedata.normalize("NFKC", text).casefold()).replace("_", " ")
    for old, new in _UNIFY:
        if old in text:
            text = text.replace(old, new)
    return _WORD.findall(text)


@dataclass
class _Windows:
    """All word windows of one length over a batch of texts: hash and owning text of each."""

    length: int
    hashes: np.ndarray
    owners: np.ndarray
    starts: np.ndarray  # position of each window's first word within its text


def _windows(word_lists: Sequence[list[str]], lengths: set[int]) -> Iterator[_Windows]:
    """Hashes of every window of each length in ``lengths`` that lies inside one text."""
    sizes = np.array([len(w) for w in word_lists], dtype=np.int64)
    flat = [w for words in word_lists for w in words]
    if not flat or not lengths:
        return
    words = np.fromiter(map(hash, flat), dtype=np.int64, count=len(flat)).view(np.uint64)
    owner = np.repeat(np.arange(len(word_lists)), sizes)
    ends = np.cumsum(sizes)[owner]  # end (exclusive) of each word's text, in flat positions
    begins = ends - sizes[owner]
    state = words.copy()
    with np.errstate(over="ignore"):
        for m in range(1, max(lengths) + 1):
            if m > 1:
                state = (state[:-1] * _MUL) ^ words[m - 1 :]
            if m in lengths:
                count = len(state)
                valid = np.arange(count) + m <= ends[:count]
                positions = np.flatnonzero(valid)
                yield _Windows(m, fmix64(state[positions]), owner[positions], positions - begins[positions])


@dataclass
class _Target:
    """The benchmark windows of one length: unique hashes, a seen flag each, and their items."""

    unique: np.ndarray
    inverse: np.ndarray  # window -> index into unique
    items: np.ndarray  # window -> global item number
    seen: np.ndarray
    bitmap: np.ndarray = field(init=False)  # low bits of every hash in unique: a cheap first filter

    def __post_init__(self) -> None:
        bits = int(np.clip(np.ceil(np.log2(max(len(self.unique), 1) * 16)), 16, 27))
        self.bitmap = np.zeros(1 << bits, dtype=bool)
        self.bitmap[self.unique & np.uint64((1 << bits) - 1)] = True

    def mark(self, hashes: np.ndarray) -> None:
        """Flag the targets among ``hashes``."""
        hashes = hashes[self.bitmap[hashes & np.uint64(len(self.bitmap) - 1)]]
        pos = np.searchsorted(self.unique, hashes)
        pos[pos == len(self.unique)] = 0
        self.seen[pos[self.unique[pos] == hashes]] = True


def _benchmark_targets(word_lists: list[list[str]], n: int, min_words: int) -> dict[int, _Target]:
    """Per window length: the n-grams of long items and the whole-item window of short ones."""
    sizes = [len(w) for w in word_lists]
    lengths = {n} | {s for s in sizes if min_words <= s < n}
    parts: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for win in _windows(word_lists, lengths):
        size = np.array(sizes)[win.owners]
        keep = (size >= n) if win.length == n else (size == win.length) & (win.starts == 0)
        hashes, owners = parts.setdefault(win.length, ([], []))
        hashes.append(win.hashes[keep])
        owners.append(win.owners[keep])
    targets = {}
    for m, (hashes, owners) in parts.items():
        if not sum(len(h) for h in hashes):
            continue
        unique, inverse = np.unique(np.concatenate(hashes), return_inverse=True)
        targets[m] = _Target(unique, inverse, np.concatenate(owners), np.zeros(len(unique), dtype=bool))
    return targets


def _mark(targets: dict[int, _Target], batch: list[list[str]]) -> None:
    """Flag the benchmark windows that occur in this batch of training texts."""
    for win in _windows(batch, set(targets)):
        targets[win.length].mark(win.hashes)


@dataclass
class ContaminationScan:
    """The outcome of a scan: which benchmark n-grams (and so items) occur in the training texts.

    Scans of disjoint parts of a corpus against the same benchmarks merge with :meth:`merge`, so the
    check can fan out over shards (one scan per shard, then one merge).
    """

    names: list[str]
    bench_of: np.ndarray  # item -> benchmark number
    sizes: np.ndarray  # item -> normalised word count
    window_item: np.ndarray  # checked n-gram -> item
    window_hit: np.ndarray  # checked n-gram -> found in a training text
    n: int
    min_words: int
    train_texts: int

    def merge(self, other: ContaminationScan) -> ContaminationScan:
        """The scan of both parts of the corpus (same benchmarks, ``n`` and ``min_words`` required)."""
        same = (self.names, self.n, self.min_words) == (other.names, other.n, other.min_words)
        if not same or not np.array_equal(self.window_item, other.window_item):
            raise ValueError("cannot merge scans of different benchmarks or settings (names, n, min_words)")
        hits = self.window_hit | other.window_hit
        return replace(self, window_hit=hits, train_texts=self.train_texts + other.train_texts)

    def save(self, path: Path | str) -> None:
        """Write the scan to ``path`` (``.npz``)."""
        meta = np.array([self.n, self.min_words, self.train_texts], dtype=np.int64)
        np.savez(
            path,
            names=np.array(self.names),
            meta=meta,
            bench_of=self.bench_of,
            sizes=self.sizes,
            window_item=self.window_item,
            window_hit=self.window_hit,
        )

    @classmethod
    def load(cls, path: Path | str) -> ContaminationScan:
        """A scan written by :meth:`save`."""
        with np.load(path) as data:
            n, min_words, train_texts = (int(v) for v in data["meta"])
            return cls(
                names=[str(name) for name in data["names"]],
                bench_of=data["bench_of"],
                sizes=data["sizes"],
                window_item=data["window_item"],
                window_hit=data["window_hit"],
                n=n,
                min_words=min_words,
                train_texts=train_texts,
            )

    def hit_items(self) -> np.ndarray:
        """Per item: whether any of its n-grams occurs in the training texts."""
        hit = np.zeros(len(self.bench_of), dtype=bool)
        hit[self.window_item[self.window_hit]] = True
        return hit

    def report(self) -> dict[str, dict[str, float | int]]:
        """Per benchmark: items, checked, skipped, contaminated items and n-grams, and the fraction."""
        hit_items = self.hit_items()
        window_bench = self.bench_of[self.window_item]
        ngrams = np.bincount(window_bench, minlength=len(self.names))
        matched = np.bincount(window_bench[self.window_hit], minlength=len(self.names))
        report: dict[str, dict[str, float | int]] = {}
        for b, name in enumerate(self.names):
            mine = self.bench_of == b
            checked = int((mine & (self.sizes >= self.min_words)).sum())
            contaminated = int((mine & hit_items).sum())
            report[name] = {
                "items": int(mine.sum()),
                "checked": checked,
                "skipped_short": int((mine & (self.sizes > 0) & (self.sizes < self.min_words)).sum()),
                "skipped_empty": int((mine & (self.sizes == 0)).sum()),
                "contaminated": contaminated,
                "fraction": contaminated / checked if checked else 0.0,
                "ngrams": int(ngrams[b]),
                "ngrams_matched": int(matched[b]),
                "n": self.n,
                "train_texts": self.train_texts,
            }
        return report

    def contaminated_items(self) -> dict[str, list[int]]:
        """Per benchmark, the positions (in the sequence given) of its contaminated items."""
        hit_items = self.hit_items()
        offsets = np.concatenate([[0], np.cumsum(np.bincount(self.bench_of, minlength=len(self.names)))])
        return {
            name: np.flatnonzero(hit_items[offsets[b] : offsets[b + 1]]).tolist()
            for b, name in enumerate(self.names)
        }


def scan_contamination(
    train_texts: Iterable[str],
    benchmarks: Mapping[str, Sequence[str]],
    n: int = DEFAULT_N,
    min_words: int = DEFAULT_MIN_WORDS,
    batch_size: int = 4096,
) -> ContaminationScan:
    """Stream ``train_texts`` once (``batch_size`` at a time) against every benchmark item."""
    if n < 1 or not 1 <= min_words <= n:
        raise ValueError(f"need n >= 1 and 1 <= min_words <= n; got n={n}, min_words={min_words}")
    names = list(benchmarks)
    word_lists = [overlap_words(text) for name in names for text in benchmarks[name]]
    bench_of = np.repeat(np.arange(len(names)), [len(benchmarks[name]) for name in names])
    targets = _benchmark_targets(word_lists, n, min_words)
    texts = iter(train_texts)
    train_count = 0
    while batch := [overlap_words(t) for t in islice(texts, batch_size)]:
        train_count += len(batch)
        _mark(targets, batch)
    ordered = [targets[m] for m in sorted(targets)]
    return ContaminationScan(
        names=names,
        bench_of=bench_of,
        sizes=np.array([len(w) for w in word_lists], dtype=np.int64),
        window_item=np.concatenate([t.items for t in ordered] or [np.zeros(0, dtype=np.int64)]),
        window_hit=np.concatenate([t.seen[t.inverse] for t in ordered] or [np.zeros(0, dtype=bool)]),
        n=n,
        min_words=min_words,
        train_texts=train_count,
    )


def contamination_report(
    train_texts: Iterable[str],
    benchmarks: Mapping[str, Sequence[str]],
    n: int = DEFAULT_N,
    min_words: int = DEFAULT_MIN_WORDS,
    batch_size: int = 4096,
) -> dict[str, dict[str, float | int]]:
    """Per benchmark: items, checked, skipped, contaminated items and n-grams, and the fraction.

    ``fraction`` is ``contaminated / checked`` (0.0 when nothing could be checked; see ``checked``).
    ``train_texts`` is consumed once, ``batch_size`` texts at a time (:func:`scan_contamination`).
    """
    return scan_contamination(train_texts, benchmarks, n, min_words, batch_size).report()


def iter_record_texts(shard_paths: Iterable[Path | str], batch_rows: int = 8192) -> Iterator[str]:
    """Every message content of common-schema record shards (parquet), streamed batch by batch.

    Each turn is its own text, so no n-gram spans two turns.
    """
    for path in shard_paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["messages"]):
            for conversation in batch.column(0).to_pylist():
                for message in conversation or []:
                    if message and message.get("content"):
                        yield message["content"]


def contamination_fractions(report: Mapping[str, Mapping[str, float | int]]) -> dict[str, float]:
    """``{benchmark: fraction}``, the form :func:`hala.evaluation.gates.evaluate_gates` takes."""
    return {name: float(row["fraction"]) for name, row in report.items()}
