"""Phasor limits as polygons whose facets join the LP only when a solution breaks them.

Each current limit is an inner polygon (``Network.linearise``); a block of the LP starts
with the ``FIRST_FACETS`` facets nearest the direction its phasor sum is expected to take,
and ``add_violated`` adds the others a solution breaks, before the stage is solved again.
``network_rows`` finds, per block of the LP (per group, when expected sessions come as
scenarios), the rows that can bind and the facets that start in the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optimizer.problem import Problem
from optimizer.types import FloatArray

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
_INF = highspy.kHighsInf
FIRST_FACETS = 2  # facets per phasor limit in the model from the start; the rest come when violated
_TOL = 1e-7  # a waiting row is broken when over its bound by more than this (relative, at least 1)


@dataclass(frozen=True, slots=True)
class LazyRows:
    """The network rows that may bind, of every block: which are in the model, which wait.

    Candidate rows come block by block; row ``k``'s entries are ``start[k]:start[k + 1]`` of
    ``index`` (LP session variables, ascending) and ``value``. Indices are 32-bit, as HiGHS
    and scipy take them (no copies).
    """

    start: Int32Array  # (candidate rows + 1,)
    index: Int32Array
    value: FloatArray
    bound: FloatArray
    added: npt.NDArray[np.bool_]  # candidate rows in the model as built
    variables: int  # LP session variables (the columns ``index`` refers to)
    matrix: sp.csr_matrix = field(init=False)  # the same rows, for products (about 10x faster)
    over: FloatArray = field(init=False)  # above this a row is broken (``bound`` plus a relative hair)

    def __post_init__(self) -> None:
        shape = (int(self.bound.size), self.variables)
        object.__setattr__(self, "matrix", sp.csr_matrix((self.value, self.index, self.start), shape=shape))
        object.__setattr__(self, "over", self.bound + _TOL * np.maximum(1.0, self.bound))

    @property
    def rows(self) -> int:
        return int(self.bound.size)

    def lhs(self, values: FloatArray) -> FloatArray:
        return np.asarray(self.matrix @ values[: self.variables], dtype=np.float64)

    def violated(self, lhs: FloatArray, added: npt.NDArray[np.bool_]) -> IntArray:
        """The rows not in the model that ``lhs`` (``lhs(values)``) breaks."""
        bad = (lhs > self.over) & ~added
        return np.nonzero(bad)[0]

    def entries(self, rows: IntArray) -> tuple[Int32Array, IntArray]:
        """For ``rows``, each one's first entry among the selected entries, and the entry positions."""
        count = self.start[rows + 1] - self.start[rows]
        first = np.cumsum(count, dtype=np.int32) - count
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


def add_violated(h: highspy.Highs, lazy: LazyRows, added: npt.NDArray[np.bool_], lhs: FloatArray) -> bool:
    """Add the waiting rows a solution breaks (``lhs``: its ``lazy.lhs``; recorded in ``added``).

    True when any were."""
    bad = lazy.violated(lhs, added)
    if bad.size == 0:
        return False
    added[bad] = True
    first, at = lazy.entries(bad)
    h.addRows(
        bad.size,
        np.full(bad.size, -_INF),
        lazy.bound[bad],
        at.size,
        first,
        lazy.index[at],
        lazy.value[at],
    )
    return True


def _empty(variables: int) -> LazyRows:
    none = np.zeros(0, dtype=np.int32)
    return LazyRows(
        np.zeros(1, dtype=np.int32), none, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.bool_), variables
    )


def _groups(problem: Problem, var_session: IntArray, var_block: IntArray) -> tuple[IntArray, IntArray, int]:
    """Which variables each group of network rows holds: (variable, group) pairs, and groups per block.

    Without scenarios a group is a block (``width`` 1). With them, a block holds one group of
    the sessions present alone and one per scenario with sessions in it (the sessions present
    plus that scenario's): group ``block * width + k``, ``k`` 0 for the sessions present alone,
    ``scenario + 1`` for a scenario. Pairs are sorted by group, then variable.
    """
    width = problem.scenarios + 1
    if width == 1:
        by_block = np.argsort(var_block, kind="stable").astype(np.int64)
        return by_block, var_block[by_block].astype(np.int64), 1
    scen = problem.scenario[var_session]
    own = np.nonzero(scen >= 0)[0]
    present = np.nonzero(scen < 0)[0]
    n_blocks = int(var_block.max(initial=-1)) + 1
    slots = np.zeros((n_blocks, width), dtype=np.bool_)
    slots[:, 0] = True
    slots[var_block[own], scen[own] + 1] = True
    slot_block, slot = np.nonzero(slots)  # block-major
    first_slot = np.searchsorted(slot_block, np.arange(n_blocks))
    count = slots.sum(axis=1)[var_block[present]]
    var = np.repeat(present, count)
    offset = np.arange(var.size) - np.repeat(np.cumsum(count) - count, count)
    group = var_block[var] * width + slot[first_slot[var_block[var]] + offset]
    var = np.concatenate([var, own])
    group = np.concatenate([group, var_block[own] * width + scen[own] + 1])
    order = np.lexsort((var, group))
    return var[order].astype(np.int64), group[order].astype(np.int64), width


def network_rows(
    problem: Problem,
    block_start: IntArray,
    block_length: IntArray,
    var_session: IntArray,
    var_block: IntArray,
    limit_block: FloatArray,
) -> LazyRows:
    """Per block (per group, with scenarios), the network rows that can bind, and which start in the model.

    A row can bind in a block when its members at full rate would break it: power rows, and
    the facets of each current limit's polygon; of a limit's facets, the ``FIRST_FACETS``
    nearest the direction its phasor sum takes with every member at full rate start in the
    model, the others wait until a solution breaks them. Computed for all blocks at once;
    candidate rows come group by group, in network-row order within a group.
    """
    network = problem.network
    n_var = var_session.size
    if n_var == 0:
        return _empty(n_var)
    rows = network.limit_rows(problem.snapshot.policy.phasor_tolerance)
    linear, coef_all, source, row_angle = rows.linear, rows.coef, rows.source, rows.angle
    power_rows = network.power_coef.shape[0]
    block_end = block_start + block_length
    member, group, width = _groups(problem, var_session, var_block)  # sorted by group
    sess = var_session[member]
    block = var_block[member]
    # per network row and session its coefficient, then the same without negative projections: a
    # member that leaves (or arrives) inside its block must not relieve a row (the row has to hold
    # both before and after), so it takes the second copy
    n = problem.sessions
    per_session = coef_all[:, problem.cols]  # (rows, sessions)
    clipped = np.clip(per_session, 0.0, None)
    table = np.hstack([per_session, clipped])
    partial = (problem.departure[sess] < block_end[block]) | (problem.arrival[sess] > block_start[block])
    column = sess + n * partial  # each member's column of ``table``
    starts = np.flatnonzero(np.diff(group, prepend=-1))  # first member of each group (ascending)
    used = group[starts]  # the groups with members
    # each row with every member of a group at full rate
    worst = np.add.reduceat((clipped * problem.upper_a)[:, sess], starts, axis=1)
    bound = np.vstack(
        [
            np.repeat(linear.bound[:, None], used.size, axis=1),
            network.power_limits(limit_block[used // width]),
        ]
    )
    binding = worst > bound + 1e-9  # (rows, used groups)
    # the direction each current limit's phasor sum takes with every member at full rate
    phasors = (network.current_coef[:, problem.cols] * problem.upper_a)[:, sess]
    full_sum = np.add.reduceat(phasors, starts, axis=1)
    angle_sum = np.angle(full_sum)  # (current limits, used groups)
    cand_group, cand_row = np.nonzero(binding.T)  # group-major: group by group, rows ascending
    if cand_row.size == 0:
        return _empty(n_var)
    linear_row = cand_row < linear.source.size
    expected = np.zeros(cand_row.size)
    expected[linear_row] = angle_sum[linear.source[cand_row[linear_row]], cand_group[linear_row]]
    # facets are ranked per (group, current limit): one key for both
    key = cand_group * (int(linear.source.max(initial=0)) + power_rows + 2) + (source[cand_row] + power_rows)
    first = first_facets(key.astype(np.int64), row_angle[cand_row], expected, FIRST_FACETS)
    added = np.zeros(cand_row.size, dtype=np.bool_)
    added[first] = True
    # each candidate row over the members of its group (a group's members are a run of columns),
    # laid out as (candidate rows, largest group), the zeros and the padding dropped
    size = np.diff(np.append(starts, member.size))
    slot = np.arange(int(size.max()))
    at = np.minimum(starts[:, None] + slot, member.size - 1)  # (groups, slots): member positions
    flat = column[at][cand_group]
    flat += cand_row[:, None] * table.shape[1]
    value = table.ravel()[flat]
    keep = value != 0
    keep &= (slot < size[:, None])[cand_group]
    start = np.zeros(cand_row.size + 1, dtype=np.int32)
    np.cumsum(keep.sum(axis=1), out=start[1:])
    return LazyRows(
        start=start,
        index=member.astype(np.int32)[at][cand_group][keep],
        value=value[keep],
        bound=bound[cand_row, cand_group],
        added=added,
        variables=n_var,
    )
