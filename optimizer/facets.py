"""Phasor limits as polygons whose facets join the LP only when a solution breaks them.

Each current limit is an inner polygon (``Network.linearise``); a block of the LP starts
with the ``FIRST_FACETS`` facets nearest the direction its phasor sum is expected to take,
and ``add_violated`` adds the others a solution breaks, before the stage is solved again.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

from optimizer.types import FloatArray

IntArray = npt.NDArray[np.int64]
_INF = highspy.kHighsInf
FIRST_FACETS = 2  # facets per phasor limit in the model from the start; the rest come when violated


@dataclass(frozen=True, slots=True)
class LazyBlock:
    """The network rows of one block that may bind: which are in the model, which wait."""

    members: IntArray  # variable indices in this block
    coef: FloatArray  # (candidate rows, members)
    bound: FloatArray
    added: npt.NDArray[np.bool_]  # candidate rows in the model as built

    def violated(self, values: FloatArray, added: npt.NDArray[np.bool_], tol: float = 1e-7) -> IntArray:
        lhs = self.coef @ values[self.members]
        bad = (lhs > self.bound + tol * np.maximum(1.0, self.bound)) & ~added
        return np.nonzero(bad)[0]


def first_facets(source: IntArray, angle: FloatArray, expected: FloatArray, per_limit: int) -> IntArray:
    """Per source constraint, the ``per_limit`` facets nearest the direction the sum is expected to take."""
    off = np.abs(np.angle(np.exp(1j * (angle - expected))))
    order = np.lexsort((off, source))  # by constraint, nearest facet first
    ranked = source[order]
    first_of = np.searchsorted(ranked, ranked)  # index where each constraint's run starts
    rank = np.arange(order.size) - first_of
    return np.sort(order[rank < per_limit]).astype(np.int64)


def add_violated(
    h: highspy.Highs, lazy: list[LazyBlock], added: list[npt.NDArray[np.bool_]], values: FloatArray
) -> bool:
    """Add the waiting facets the solution breaks (recorded in ``added``); True when any were."""
    starts: list[int] = []
    index: list[IntArray] = []
    coef: list[FloatArray] = []
    upper: list[float] = []
    nnz = 0
    for k, block in enumerate(lazy):
        bad = block.violated(values, added[k])
        if bad.size == 0:
            continue
        added[k][bad] = True
        for r in bad:
            row = block.coef[r]
            nz = np.nonzero(row)[0]
            starts.append(nnz)
            index.append(block.members[nz])
            coef.append(row[nz])
            upper.append(float(block.bound[r]))
            nnz += nz.size
    if not starts:
        return False
    count = len(starts)
    h.addRows(
        count,
        np.full(count, -_INF),
        np.array(upper),
        nnz,
        np.array(starts, dtype=np.int32),
        np.concatenate(index).astype(np.int32),
        np.concatenate(coef),
    )
    return True
