"""Phasor limits as polygons whose facets join the LP only when a solution breaks them.

Each current limit is an inner polygon (``Network.linearise``); a block of the LP starts
with the ``FIRST_FACETS`` facets nearest the direction its phasor sum is expected to take,
and ``add_violated`` adds the others a solution breaks, before the stage is solved again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optimizer.types import FloatArray

IntArray = npt.NDArray[np.int64]
_INF = highspy.kHighsInf
FIRST_FACETS = 2  # facets per phasor limit in the model from the start; the rest come when violated


@dataclass(frozen=True, slots=True)
class LazyRows:
    """The network rows that may bind, of every block: which are in the model, which wait.

    Candidate rows come block by block; row ``k``'s entries are ``start[k]:start[k + 1]`` of
    ``index`` (LP session variables, ascending) and ``value``.
    """

    start: IntArray  # (candidate rows + 1,)
    index: IntArray
    value: FloatArray
    bound: FloatArray
    added: npt.NDArray[np.bool_]  # candidate rows in the model as built
    variables: int  # LP session variables (the columns ``index`` refers to)
    matrix: sp.csr_matrix = field(init=False)  # the same rows, for products (about 10x faster)

    def __post_init__(self) -> None:
        shape = (int(self.bound.size), self.variables)
        object.__setattr__(self, "matrix", sp.csr_matrix((self.value, self.index, self.start), shape=shape))

    @property
    def rows(self) -> int:
        return int(self.bound.size)

    def lhs(self, values: FloatArray) -> FloatArray:
        return np.asarray(self.matrix @ values[: self.variables], dtype=np.float64)

    def violated(self, values: FloatArray, added: npt.NDArray[np.bool_], tol: float = 1e-7) -> IntArray:
        bad = (self.lhs(values) > self.bound + tol * np.maximum(1.0, self.bound)) & ~added
        return np.nonzero(bad)[0]

    def entries(self, rows: IntArray) -> tuple[IntArray, IntArray]:
        """For ``rows``, each one's first entry among the selected entries, and the entry positions."""
        count = self.start[rows + 1] - self.start[rows]
        first = np.cumsum(count) - count
        at = np.repeat(self.start[rows] - first, count) + np.arange(int(count.sum()))
        return first, at


def first_facets(source: IntArray, angle: FloatArray, expected: FloatArray, per_limit: int) -> IntArray:
    """Per source constraint, the ``per_limit`` facets nearest the direction the sum is expected to take."""
    off = np.abs(np.angle(np.exp(1j * (angle - expected))))
    order = np.lexsort((off, source))  # by constraint, nearest facet first
    ranked = source[order]
    first_of = np.searchsorted(ranked, ranked)  # index where each constraint's run starts
    rank = np.arange(order.size) - first_of
    return np.sort(order[rank < per_limit]).astype(np.int64)


def add_violated(h: highspy.Highs, lazy: LazyRows, added: npt.NDArray[np.bool_], values: FloatArray) -> bool:
    """Add the waiting rows the solution breaks (recorded in ``added``); True when any were."""
    bad = lazy.violated(values, added)
    if bad.size == 0:
        return False
    added[bad] = True
    first, at = lazy.entries(bad)
    h.addRows(
        bad.size,
        np.full(bad.size, -_INF),
        lazy.bound[bad],
        at.size,
        first.astype(np.int32),
        lazy.index[at].astype(np.int32),
        lazy.value[at],
    )
    return True
