"""Split a text into prose the model translates and structure that passes through byte-for-byte.

``split_for_translation`` cuts a text into :class:`Segment` objects whose concatenation is the text
exactly. Fenced code, blank lines, markdown line prefixes (headings, bullets, numbered items, quotes),
table pipes and separator rows, outer whitespace and pieces without letters are not translated; long
prose is split under a budget at sentence, then clause, then word boundaries. ``reassemble`` puts the
translations back. Inside prose, ``mask_spans`` hides inline code, URLs, link targets, e-mail
addresses and LaTeX math behind placeholders ``⟦0⟧``, ``⟦1⟧`` ... that ``unmask_spans`` restores.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Placeholders; the same pattern masks literal look-alikes in the input, so every round trip is exact.
# ``\d`` also accepts Arabic-Indic digits, which a model translating into Arabic may write.
_PLACEHOLDER = re.compile(r"⟦\s*(\d+)\s*⟧")
_SPAN = re.compile(
    "|".join(
        (
            _PLACEHOLDER.pattern,
            r"(?<!`)(`+)(?!`)[\s\S]+?(?<!`)\2(?!`)",  # inline code, any backtick run length
            r"\$\$[\s\S]+?\$\$|\\\[[\s\S]+?\\\]|\\\([\s\S]+?\\\)",  # display and \( \) math
            r"(?<=\])\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*(?:\s+\"[^\"]*\")?\)",  # markdown link target
            r"(?:(?:https?|ftp)://|(?<![\w.])www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]",  # URL
            r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail address
            r"\$(?=[^\s$])[^$\n]*?(?<=[^\s$])\$(?!\d)",  # inline $math$, not "$5 and $10"
        )
    )
)
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_FENCE = re.compile(r"[ \t]*(`{3,}[^`]*|~{3,}.*)")
_PREFIX = re.compile(r"[ \t]*(?:(?:>[ \t]?)+[ \t]*)?(?:#{1,6}[ \t]+|[-*+][ \t]+|\d{1,9}[.)][ \t]+)?")
_PIPE = re.compile(r"((?<!\\)\|)")
# Split levels for prose over budget: sentences (and newlines), clauses, words. Separators are pure
# whitespace, so every piece between them is stripped.
_LEVELS = (
    re.compile(r"((?<=[.!?؟۔])\s+|(?<=[.!?؟۔][\"'”’)\]])\s+|\s*\n\s*)"),
    re.compile(r"((?<=[;:,،؛])\s+)"),
    re.compile(r"(\s+)"),
)


@dataclass(frozen=True)
class Segment:
    """A piece of the original text; ``translate=False`` pieces pass through byte-for-byte."""

    text: str
    translate: bool


class PlaceholderError(ValueError):
    """A model output lost, duplicated or invented span placeholders."""

    def __init__(self, missing: list[int], duplicated: list[int], invented: list[int]) -> None:
        self.missing, self.duplicated, self.invented = missing, duplicated, invented
        super().__init__(
            f"placeholders missing {missing}, duplicated {duplicated}, invented {invented} in the output"
        )


def mask_spans(text: str) -> tuple[str, list[str]]:
    r"""Replace spans the model must not touch with numbered placeholders.

    Masked: inline code (any backtick run), URLs (``http``, ``https``, ``ftp``, ``www.``), markdown
    link targets ``(url)`` after ``]`` (the link text stays), e-mail addresses, LaTeX math
    (``$...$``, ``$$...$$``, ``\(...\)``, ``\[...\]``) and literal placeholder look-alikes.

    Args:
        text: Prose, possibly with inline markup.

    Returns:
        The text with ``⟦i⟧`` in place of span ``i``, and the original spans in order.
    """
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group())
        return f"⟦{len(spans) - 1}⟧"

    return _SPAN.sub(hide, text), spans


def unmask_spans(text: str, spans: Sequence[str]) -> str:
    """Put the original spans back in place of their placeholders.

    Args:
        text: A masked text, typically a model's translation of one.
        spans: The spans ``mask_spans`` returned for the source.

    Returns:
        The text with every placeholder replaced by its span.

    Raises:
        PlaceholderError: A placeholder is missing, appears more than once or has no span.
    """
    seen = Counter(int(m.group(1)) for m in _PLACEHOLDER.finditer(text))
    missing = [i for i in range(len(spans)) if i not in seen]
    duplicated = sorted(i for i, n in seen.items() if n > 1 and i < len(spans))
    invented = sorted(i for i in seen if i >= len(spans))
    if missing or duplicated or invented:
        raise PlaceholderError(missing, duplicated, invented)
    return _PLACEHOLDER.sub(lambda m: spans[int(m.group(1))], text)


def is_translatable(text: str) -> bool:
    """Whether ``text`` has letters (any script) outside inline code, URLs, math and other spans."""
    masked, _ = mask_spans(text)
    return any(ch.isalpha() for ch in _PLACEHOLDER.sub("", masked))


def _pack(text: str, level: int, max_units: int, size: Callable[[str], int]) -> list[tuple[str, bool]]:
    """Split ``text`` into ``(piece, is_separator)`` pairs, every piece within budget where possible."""
    if level == len(_LEVELS) or size(text) <= max_units:
        return [(text, False)]
    parts = _LEVELS[level].split(text)  # atom, separator, atom, ...
    out: list[tuple[str, bool]] = []
    current = parts[0]
    for separator, atom in zip(parts[1::2], parts[2::2], strict=True):
        if size(current + separator + atom) <= max_units:
            current += separator + atom
        else:
            out += [*_pack(current, level + 1, max_units, size), (separator, True)]
            current = atom
    return out + _pack(current, level + 1, max_units, size)


def _prose(text: str, max_units: int, measure: Callable[[str], int]) -> list[Segment]:
    """Segments of one prose piece: outer whitespace and letterless pieces kept, the rest to translate."""
    core = text.strip()
    if not is_translatable(core):
        return [Segment(text, False)]
    start = len(text) - len(text.lstrip())
    masked, spans = mask_spans(core)

    def raw(piece: str) -> str:
        return _PLACEHOLDER.sub(lambda m: spans[int(m.group(1))], piece)

    pieces = _pack(masked, 0, max_units, lambda piece: measure(raw(piece)))
    inner = [Segment(raw(p), not sep and is_translatable(raw(p))) for p, sep in pieces]
    return [Segment(text[:start], False), *inner, Segment(text[start + len(core) :], False)]


def _table_row(line: str, max_units: int, measure: Callable[[str], int]) -> list[Segment]:
    """Segments of one table row: pipes kept, every cell's content translated.

    A separator row (``|---|:---:|``) has no letters in its cells, so it passes through whole.
    """
    out: list[Segment] = []
    for index, part in enumerate(_PIPE.split(line)):
        out += [Segment(part, False)] if index % 2 else _prose(part, max_units, measure)
    return out


def _marker(line: str) -> str:
    """The markdown prefix of a line (heading, bullet, numbered item, quote) with its indentation, or ""."""
    match = _PREFIX.match(line)
    prefix = match.group() if match else ""
    return prefix if prefix.strip() else ""


def _is_plain(line: str) -> bool:
    """Whether a line continues a paragraph (not blank, a fence, a table row or a prefixed line)."""
    body = line.rstrip("\r\n")
    return bool(body.strip()) and not (
        _FENCE.fullmatch(body) or body.lstrip().startswith("|") or _marker(body)
    )


def _fence_end(lines: list[str], start: int, opening: str) -> int:
    """Index after the fenced block opening at ``lines[start]``: past its closing fence or the end."""
    width = len(opening) - len(opening.lstrip(opening[0]))
    closing = re.compile(rf"[ \t]*{re.escape(opening[0])}{{{width},}}[ \t]*")
    end = start + 1
    while end < len(lines) and not closing.fullmatch(lines[end].rstrip("\r\n")):
        end += 1
    return min(end + 1, len(lines))


def split_for_translation(text: str, max_units: int, measure: Callable[[str], int] = len) -> list[Segment]:
    """Split ``text`` into segments; joining their texts gives back ``text`` exactly.

    Each translatable segment has ``measure(segment.text) <= max_units`` where possible: prose over
    budget is split at sentence ends and newlines, then at ``;``, ``:``, ``,`` and finally at whitespace.
    A single word (or masked span) longer than ``max_units`` stays whole and exceeds the budget.

    Args:
        text: The text to translate.
        max_units: The budget of one translatable segment, in the units of ``measure``.
        measure: The size of a string, for example its character count or a tokenizer's token count.

    Returns:
        The segments in order; adjacent non-translated segments are merged and none is empty.

    Raises:
        ValueError: ``max_units`` is below 1.
    """
    if max_units < 1:
        raise ValueError(f"max_units must be at least 1, got {max_units}")
    lines = _LINE.findall(text)
    segments: list[Segment] = []
    i = 0
    while i < len(lines):
        line, body = lines[i], lines[i].rstrip("\r\n")
        end = i + 1
        if fence := _FENCE.fullmatch(body):
            end = _fence_end(lines, i, fence.group(1))
            segments.append(Segment("".join(lines[i:end]), False))
        elif not body.strip():
            segments.append(Segment(line, False))
        elif body.lstrip().startswith("|"):
            segments += _table_row(line, max_units, measure)
        elif prefix := _marker(line):
            segments += [Segment(prefix, False), *_prose(line[len(prefix) :], max_units, measure)]
        else:
            while end < len(lines) and _is_plain(lines[end]):
                end += 1
            segments += _prose("".join(lines[i:end]), max_units, measure)
        i = end
    return _merge(segments)


def _merge(segments: list[Segment]) -> list[Segment]:
    """Drop empty segments and join runs of adjacent non-translated ones."""
    out: list[Segment] = []
    for segment in segments:
        if not segment.text:
            continue
        if out and not segment.translate and not out[-1].translate:
            out[-1] = Segment(out[-1].text + segment.text, False)
        else:
            out.append(segment)
    return out


def reassemble(segments: list[Segment], translations: Sequence[str]) -> str:
    """Rebuild a text, replacing each translatable segment in order with the next translation.

    Raises:
        ValueError: The number of translations differs from the number of translatable segments.
    """
    expected = sum(segment.translate for segment in segments)
    if len(translations) != expected:
        raise ValueError(
            f"expected {expected} translations, one per translatable segment, got {len(translations)}"
        )
    pending = iter(translations)
    return "".join(next(pending) if segment.translate else segment.text for segment in segments)
