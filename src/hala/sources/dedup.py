"""The duplicate-id rule, across the record batches of a source: the first valid occurrence is kept.

Within one batch, candidates come from a 64-bit hash of each id and every candidate repeat is
confirmed by comparing the ids themselves, so a hash collision never drops a row. Across batches,
an id counts as claimed by an earlier batch when both of its 64-bit hashes (:func:`stable_hash_pair`,
a 128-bit key) equal those of an id kept earlier: the ids themselves are not held, so memory grows
by 16 bytes per kept row, not by the ids' length.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def first_occurrence(ids: pa.Array, hashes: np.ndarray) -> np.ndarray:
    """True for the first row of each id, False for later repeats (ids compared on hash matches)."""
    _, first_rows = np.unique(hashes, return_index=True)
    keep = np.zeros(len(ids), dtype=bool)
    keep[first_rows] = True
    repeats = np.flatnonzero(~keep)
    if repeats.size:
        seen = {
            int(hashes[row]): {ids[int(row)].as_py()}
            for row in first_rows[np.isin(hashes[first_rows], hashes[repeats])]
        }
        for row in repeats.tolist():
            same_hash = seen[int(hashes[row])]
            value = ids[row].as_py()
            if value not in same_hash:  # a hash collision, not a repeat: keep it
                keep[row] = True
                same_hash.add(value)
    return keep


# Keys in one sorted run at most: a merge's scratch memory stays bounded however many ids are kept.
MAX_RUN = 1 << 20


class ClaimedIds:
    """The ids kept so far, as sorted runs of 128-bit keys (merged as they grow, like an LSM tree).

    Runs merge up to :data:`MAX_RUN` keys, so a merge never copies more than that (about 56 MB) and
    a lookup searches a few runs per million ids kept.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (first hashes sorted, second hashes)

    def __len__(self) -> int:
        return sum(len(first) for first, _ in self._runs)

    def claim(self, ids: pa.Array, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """True for each id (valid rows of one batch, in order) that an earlier row already holds.

        The ids not repeated are claimed: a later batch repeating one of them gets True.
        """
        repeat = ~first_occurrence(ids, first) | self._held(first, second)
        fresh = ~repeat
        self._add(first[fresh], second[fresh])
        return repeat

    def _held(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        held = np.zeros(len(first), dtype=bool)
        for keys, seconds in self._runs:
            lo = np.searchsorted(keys, first, side="left")
            hi = np.searchsorted(keys, first, side="right")
            single = hi - lo == 1
            held[single] |= seconds[lo[single]] == second[single]
            for row in np.flatnonzero(hi - lo > 1).tolist():  # a 64-bit collision among kept ids
                held[row] |= bool((seconds[lo[row] : hi[row]] == second[row]).any())
        return held

    def _add(self, first: np.ndarray, second: np.ndarray) -> None:
        if not len(first):
            return
        order = np.argsort(first, kind="stable")
        self._runs.append((first[order], second[order]))
        while (
            len(self._runs) > 1
            and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0])
            and len(self._runs[-2][0]) + len(self._runs[-1][0]) <= MAX_RUN
        ):
            (a, a2), (b, b2) = self._runs.pop(-2), self._runs.pop()
            keys, seconds = np.concatenate([a, b]), np.concatenate([a2, b2])
            order = np.argsort(keys, kind="stable")  # two sorted runs: timsort merges them in one pass
            self._runs.append((keys[order], seconds[order]))
