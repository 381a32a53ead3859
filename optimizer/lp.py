"""The linear program: build, solve in lexicographic stages, read back.

Variables are the current of each session in each *block* of periods. The first
``policy.exact_periods`` periods are blocks of one; after them blocks grow
geometrically (a plan for the far future does not need five-minute detail: it is
re-solved long before it is reached). Blocks also break wherever a session leaves
or the site limit or price changes, so within a block the active set, the limit and
the price are constant and a block's constraints equal its periods' constraints.

Stages share one HiGHS model and warm-start from each other:
1. energy: maximise energy delivered, with a tiny preference for earlier energy
   (online, capacity left idle now is lost if new cars arrive). When a limit binds
   anywhere in that plan (capacity is short), the cumulative energy through each exact
   period is held: later stages may move energy between sessions, not into the future.
   Not held when a forecast covers every car present's whole stay, expects nobody during
   it (or, with ``Policy.trust_forecast``, the plan serves in full every car it expects
   then) and leaves no car present short (``_hold_needed``): then nobody known or expected
   needs the capacity left idle, and a depot's fleet may wait for the cheap hours.
   (A stage giving that early energy to the least lax first was measured and dropped:
   it starved long stays and delivered less);
2. fairness (``max-min``): with energy held at its optimum, maximise the least
   priority-weighted share of each whole request served (delivered so far + planned);
3. cost, then peak: with energy and the fairness level held, minimise energy cost
   (plus demand charge), then, far below it, the peak; both count only the peak above the
   billing period's peak so far (``Site.peak_so_far_kw``);
4. evenness and ties, with cost held: share the current applied now evenly (a concave
   utility of each session's fraction of its usable rate), then keep the limits each
   charger holds for the first periods (fewer SetChargingProfile calls), then deliver
   earlier.
A stage that fails or runs out of time leaves the previous stage's solution in place.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

from optimizer.blocks import Blocks, make_blocks
from optimizer.facets import LazyRows, add_violated, network_rows
from optimizer.lp_arrays import ColumnwiseLp
from optimizer.problem import Problem
from optimizer.types import FloatArray

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
_INF = highspy.kHighsInf
# the last stage's preference for earlier energy, per kWh (see ``solve``'s stage 4)
_EARLY_TIE_BREAK = 1e-4
# how much a later stage may give back of what an earlier one reached (relative): tighter
# holds made HiGHS report later stages infeasible within its own tolerances
_HOLD_SLACK = 1e-5
_EVEN_SEGMENTS = 4
_DUAL_SIMPLEX = 1  # HiGHS simplex_strategy values
_PRIMAL_SIMPLEX = 4


@dataclass(frozen=True, slots=True)
class LpModel:
    """The built model and how to read it back."""

    columns: ColumnwiseLp
    blocks: Blocks
    var_session: IntArray
    var_block: IntArray
    energy_coef: FloatArray  # kWh per A of each variable
    value_coef: FloatArray  # what the energy stage maximises per A: energy_coef, less for expected sessions
    col_level: int  # the fairness level column
    col_peak: int
    cols_even: IntArray  # per first-block variable and segment, its share of the usable rate
    even_rows_var: IntArray  # the first-block variables the evenness segments measure
    even_usable: FloatArray  # the most each of them could use [A]
    even_value: FloatArray  # utility per unit of each evenness column
    cols_dev: IntArray  # per hold-period variable with a known offered current, its change
    row_total: int  # total-energy row
    rows_fair: IntArray  # per session share rows
    price_coef: FloatArray  # cost per A of each variable
    early_coef: FloatArray  # 0..1, how late in the horizon each variable is
    need_kwh: FloatArray
    lazy: LazyRows

    @property
    def lp(self) -> highspy.HighsLp:
        """The model as a ``HighsLp`` (with every cost 0), for those who want one."""
        return self.columns.highs_lp


@dataclass(frozen=True, slots=True)
class LpResult:
    current_a: FloatArray  # (sessions, periods), continuous
    stages_done: tuple[str, ...]
    message: str


def build(problem: Problem) -> LpModel:
    """Assemble the LP (column-wise) for ``problem``; no solving here."""
    blocks = make_blocks(problem)
    n = problem.sessions
    period_h = problem.period_h
    # variables: session i in every block that starts before it leaves
    block_end = blocks.start + blocks.length
    active = (blocks.start[None, :] < problem.departure[:, None]) & (
        block_end[None, :] > problem.arrival[:, None]
    )
    active &= (problem.need_kwh > 1e-9)[:, None] & (problem.upper_a > 1e-9)[:, None]
    var_session, var_block = np.nonzero(active)
    n_var = var_session.size
    # a session arriving or leaving inside a block charges only its share of the block
    charging = np.minimum(block_end[var_block], problem.departure[var_session]) - np.maximum(
        blocks.start[var_block], problem.arrival[var_session]
    )
    energy_coef = problem.kw_per_a[var_session] * charging * period_h
    # a block's variable may draw what its session may in every period of the block
    if problem.snapshot.site.evse_caps:
        var_upper = np.minimum.reduceat(problem.upper_at_a, blocks.start, axis=1)[var_session, var_block]
    else:
        var_upper = problem.upper_a[var_session]
    mid = (blocks.start[var_block] + 0.5 * blocks.length[var_block]) / max(problem.periods, 1)
    # each block's mean price as ``mean`` has it (``np.add.reduce`` / n, bit for bit; over a
    # single period that is its price, plus the 0.0 the reduction starts from)
    price = problem.price_per_kwh
    price_block = price[blocks.start] + 0.0
    for b in np.flatnonzero(blocks.length > 1).tolist():
        s, e = int(blocks.start[b]), int(block_end[b])
        price_block[b] = np.add.reduce(price[s:e]) / (e - s)
    limit_block = np.minimum.reduceat(problem.site_limit_kw, blocks.start)
    base_block = np.maximum.reduceat(problem.base_load_kw, blocks.start)

    col_level, col_peak = n_var, n_var + 1
    rows_i: list[IntArray] = []
    cols_i: list[IntArray] = []
    vals: list[FloatArray] = []
    lower: list[FloatArray] = []
    upper: list[FloatArray] = []
    row = 0

    def add(r: IntArray, c: IntArray, v: FloatArray, lo: FloatArray, hi: FloatArray, count: int) -> None:
        nonlocal row
        rows_i.append(r + row)
        cols_i.append(c)
        vals.append(v)
        lower.append(lo)
        upper.append(hi)
        row += count

    var_index = np.arange(n_var)
    # per-session energy need
    add(var_session, var_index, energy_coef, np.full(n, -_INF), problem.need_kwh.copy(), n)
    # network rows per block: those that can bind; the first facets of each current limit
    # start in the model, the others are added when a solution breaks them
    lazy = network_rows(problem, blocks.start, blocks.length, var_session, var_block, limit_block)
    kept = np.nonzero(lazy.added)[0]
    if kept.size:
        kept_first, at = lazy.entries(kept)
        add(
            np.repeat(np.arange(kept.size), np.diff(np.append(kept_first, at.size))),
            lazy.index[at].astype(np.int64),
            lazy.value[at],
            np.full(kept.size, -_INF),
            lazy.bound[kept],
            kept.size,
        )
    # total energy, expected sessions weighted (bounded from below after stage 1)
    value_coef = energy_coef * problem.energy_weight[var_session]
    row_total = row
    add(np.zeros(n_var, dtype=np.int64), var_index, value_coef, np.array([-_INF]), np.array([_INF]), 1)
    # fairness on the share of each whole request (delivered so far + planned), so a car that
    # has had nothing yet ranks lowest: delivered_i + served_i >= level * weight_i * request_i
    rows_fair = np.arange(row, row + n, dtype=np.int64)
    weight = problem.priority / problem.priority.max() if n else problem.priority
    weight = weight * ~problem.expected  # expected sessions take no part in fairness
    request = problem.need_kwh + problem.delivered_kwh
    add(var_session, var_index, energy_coef, -problem.delivered_kwh, np.full(n, _INF), 0)
    add(
        np.arange(n, dtype=np.int64),
        np.full(n, col_level),
        -weight * request,
        np.zeros(0),
        np.zeros(0),
        n,
    )
    # peak: station power in each block minus the peak variable <= -base load (the sessions of
    # scenarios left out: they are alternatives, not load on top of each other)
    blocks_used = np.flatnonzero(np.bincount(var_block))  # the blocks with variables, ascending
    one_future = problem.scenario[var_session] < 0
    add(
        np.searchsorted(blocks_used, var_block[one_future]).astype(np.int64),
        var_index[one_future],
        problem.kw_per_a[var_session[one_future]],
        np.zeros(0),
        np.zeros(0),
        0,
    )
    add(
        np.arange(blocks_used.size, dtype=np.int64),
        np.full(blocks_used.size, col_peak),
        np.full(blocks_used.size, -1.0),
        np.full(blocks_used.size, -_INF),
        -base_block[blocks_used],
        blocks_used.size,
    )

    # evenness now: each session's fraction of the rate it could use in the first block,
    # y_i = x_i0 / usable_i, split into quarter segments valued 8, 4, 2, 1 (a concave utility,
    # so the LP fills every session's first quarter before anyone's second): maximising it
    # with cost held shares the current applied now, and one session that cannot take
    # current now does not stop the others being evened out (a single max-min level did)
    first = np.nonzero(var_block == 0)[0]
    sess_first = var_session[first]
    per_a = energy_coef[first]
    usable = np.where(
        per_a > 0,
        np.minimum(var_upper[first], problem.need_kwh[sess_first] / np.where(per_a > 0, per_a, 1.0)),
        0.0,
    )
    col_even = n_var + 2
    n_even = first.size * _EVEN_SEGMENTS
    local = np.arange(first.size, dtype=np.int64)
    add(local, first, -np.ones(first.size), np.zeros(0), np.zeros(0), 0)
    for k in range(_EVEN_SEGMENTS):
        add(local, col_even + k * first.size + local, usable, np.zeros(0), np.zeros(0), 0)
    add(local[:0], local[:0], np.zeros(0), np.full(first.size, -_INF), np.zeros(first.size), first.size)
    even_value = np.concatenate(
        [weight[sess_first] * 2.0 ** (_EVEN_SEGMENTS - 1 - k) for k in range(_EVEN_SEGMENTS)]
    )
    # stability: |x(i, b) - offered_i| <= dev_(i,b) in the first hold periods, minimised last:
    # a charger compares the first periods of a new profile with what it holds, so plans that
    # merely reshuffle equally good currents there would cost SetChargingProfile calls
    hold = problem.offered_a.shape[1]
    in_hold = np.nonzero(blocks.start[var_block] < hold)[0]
    held_a = problem.offered_a[var_session[in_hold], np.minimum(blocks.start[var_block[in_hold]], hold - 1)]
    first_block = in_hold[~np.isnan(held_a)]
    col_dev = n_var + 2 + n_even
    n_dev = first_block.size
    if n_dev:
        local = np.arange(n_dev, dtype=np.int64)
        offered = problem.offered_a[var_session[first_block], blocks.start[var_block[first_block]]]
        add(local, first_block, np.ones(n_dev), np.zeros(0), np.zeros(0), 0)
        add(local, col_dev + local, -np.ones(n_dev), np.full(n_dev, -_INF), offered, n_dev)
        add(local, first_block, np.ones(n_dev), np.zeros(0), np.zeros(0), 0)
        add(local, col_dev + local, np.ones(n_dev), offered, np.full(n_dev, _INF), n_dev)
    n_col = n_var + 2 + n_even + n_dev

    col_lower = np.zeros(n_col)
    # a peak below the billing period's peak so far is already paid for: no gain in going lower
    col_lower[col_peak] = max(problem.snapshot.site.peak_so_far_kw, 0.0)
    columns = ColumnwiseLp.from_entries(
        np.concatenate(rows_i),
        np.concatenate(cols_i),
        np.concatenate(vals),
        (row, n_col),
        col_lower,
        np.concatenate([var_upper, [0.0, _INF], np.zeros(n_even), np.full(n_dev, _INF)]),
        np.concatenate(lower),
        np.concatenate(upper),
    )
    return LpModel(
        columns=columns,
        blocks=blocks,
        var_session=var_session.astype(np.int64),
        var_block=var_block.astype(np.int64),
        energy_coef=energy_coef,
        value_coef=value_coef,
        col_level=col_level,
        col_peak=col_peak,
        cols_even=col_even + np.arange(n_even, dtype=np.int64),
        even_rows_var=first.astype(np.int64),
        even_usable=usable,
        even_value=even_value,
        cols_dev=col_dev + np.arange(n_dev, dtype=np.int64),
        row_total=row_total,
        rows_fair=rows_fair,
        price_coef=energy_coef * price_block[var_block],
        early_coef=mid,
        need_kwh=problem.need_kwh,
        lazy=lazy,
    )


def solve(model: LpModel, problem: Problem, deadline_s: float) -> LpResult | None:
    """Run the stages; ``None`` when not even the energy stage reached an optimum in time."""
    policy = problem.snapshot.policy
    started = time.perf_counter()
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    # measured on the Caltech site (50 EVs x 288 periods): the model is small and sparse, so
    # presolve costs more than it saves; the cold energy stage is fastest with the dual simplex
    # (p95 36.7 -> 27.5 ms per call at 150 kW, 34.2 -> 27.4 ms at 60 kW, quiet machine), the
    # later stages, which only change the objective, with the primal one from the last basis
    h.setOptionValue("presolve", "off")
    h.setOptionValue("simplex_strategy", _DUAL_SIMPLEX)
    model.columns.pass_to(h)
    n_var = model.var_session.size
    n_col = n_var + 2 + model.cols_even.size + model.cols_dev.size
    cols = np.arange(n_col, dtype=np.int32)
    done: list[str] = []
    solution: FloatArray | None = None
    solution_lhs: FloatArray | None = None  # the candidate network rows' left-hand sides at ``solution``
    added = model.lazy.added.copy()

    def run(costs: FloatArray, name: str) -> bool:
        left = deadline_s - (time.perf_counter() - started)
        if left <= 0:
            return False
        h.changeColsCost(cols.size, cols, costs)
        while True:
            left = deadline_s - (time.perf_counter() - started)
            if left <= 0:
                return False
            h.setOptionValue("time_limit", left)
            h.run()
            status = h.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal:
                log.warning("LP stage %s ended %s", name, h.modelStatusToString(status))
                return False
            values = np.asarray(h.getSolution().col_value, dtype=np.float64)
            log.debug("stage %s: %.1f ms", name, 1e3 * (time.perf_counter() - started))
            lhs = model.lazy.lhs(values)
            if not add_violated(h, model.lazy, added, lhs):
                break
        nonlocal solution, solution_lhs
        solution, solution_lhs = values, lhs
        done.append(name)
        return True

    zero = np.zeros(n_col)
    # 1. energy, earlier preferred by a margin far below one unit of energy
    cost = zero.copy()
    cost[:n_var] = -model.value_coef * (1.0 - 1e-3 * model.early_coef)
    if not run(cost, "energy"):
        return None
    assert solution is not None
    best_value = float(model.value_coef @ solution[:n_var])
    h.changeRowBounds(model.row_total, best_value * (1 - _HOLD_SLACK) - 1e-6, _INF)
    real = ~problem.expected[model.var_session]
    best_energy = float(model.energy_coef[real] @ solution[:n_var][real])
    if not real.all():  # the energy of the cars present is held on its own too
        cols_real = np.nonzero(real)[0].astype(np.int32)
        coef_real = model.energy_coef[cols_real]
        h.addRow(best_energy * (1 - _HOLD_SLACK) - 1e-6, _INF, cols_real.size, cols_real, coef_real)
    assert solution_lhs is not None
    if not problem.arrivals_known and _hold_needed(model, problem, solution, solution_lhs):
        _hold_early_energy(h, model, problem, solution)
    h.setOptionValue("simplex_strategy", _PRIMAL_SIMPLEX)
    # 2. fairness (nothing to share out when every need is met)
    all_served = best_energy >= float(problem.need_kwh[~problem.expected].sum()) * (1 - 1e-6) - 1e-9
    if policy.fairness == "max-min" and problem.sessions > 1 and not all_served:
        h.changeColBounds(model.col_level, 0.0, 1.0)
        cost = zero.copy()
        cost[model.col_level] = -1.0
        if run(cost, "fairness"):
            level = float(solution[model.col_level])
            h.changeColBounds(model.col_level, max(level * (1 - _HOLD_SLACK) - 1e-6, 0.0), 1.0)
    # 3. cost, then peak
    cost = zero.copy()
    price_scale = max(float(np.max(np.abs(model.price_coef))) if n_var else 0.0, 1.0)
    if "cost" in policy.objective:
        cost[:n_var] = model.price_coef
    demand = problem.snapshot.site.demand_charge_per_kw
    cost[model.col_peak] = (demand if demand > 0 else 0.0) + (
        1e-4 * price_scale if "peak" in policy.objective else 0.0
    )
    if np.any(cost) and run(cost, "cost"):
        assert solution is not None
        best = float(cost @ solution)
        nz = np.nonzero(cost)[0].astype(np.int32)
        h.addRow(-_INF, best + _HOLD_SLACK * abs(best) + 1e-7, nz.size, nz, cost[nz])
    # 4. last, one stage of weighted terms, in order of weight: evenness of the current applied
    # now (a concave utility, 8..1 per segment of each session's usable rate), keeping the
    # limits chargers hold (0.03 per A: a deadband for small evenness gains), earlier energy
    # (1e-4 per kWh at most, ~2e-6 per A and period: above HiGHS's 1e-7 dual tolerance, so it
    # does break ties; at 1e-6 per kWh it sat below it and broke them only by chance)
    last = zero.copy()
    if model.cols_even.size and problem.sessions > 1:
        segments = model.cols_even.astype(np.int32)
        h.changeColsBounds(segments.size, segments, np.zeros(segments.size), _segment_widths(model, solution))
        last[model.cols_even] = -model.even_value
    last[model.cols_dev] = 0.03
    last[:n_var] -= _EARLY_TIE_BREAK * (1.0 - model.early_coef) * model.energy_coef
    run(last, "evenness")
    assert solution is not None
    return LpResult(current_a=read_back(model, problem, solution), stages_done=tuple(done), message="")


def _segment_widths(model: LpModel, solution: FloatArray | None) -> FloatArray:
    """Widths of the evenness segments around the fair fraction of the usable rate now.

    With ``f`` the fraction every session would get if the current applied now were shared
    in proportion to what each can use, the segments end at f/2, f, 2f and 1: the utility
    bends where the sharing is decided, however scarce the current (with fixed quarters,
    42 cars at 10 % of their rate all sat in the first, linear, segment).
    """
    first = model.even_rows_var
    usable = model.even_usable
    total = float(usable.sum())
    fair = 0.25 if solution is None or total <= 0 else float(solution[first].sum()) / total
    fair = min(max(fair, 1e-3), 1.0)
    edges = np.minimum(np.array([fair / 2, fair, 2 * fair, 1.0]), 1.0)
    widths = np.diff(np.concatenate([[0.0], edges]))
    return np.repeat(np.maximum(widths, 0.0), first.size)


def _hold_needed(model: LpModel, problem: Problem, solution: FloatArray, lhs: FloatArray) -> bool:
    """Whether to hold the energy-first plan's early energy: a limit binds in it (capacity is
    short) and a car may still come for the capacity left idle.

    Without a forecast over the cars' stays anyone may come, and a car whose departure is unknown
    (the policy's default stay) may leave before energy deferred. With a forecast and known
    departures, the early energy is held when a car present is left short, or when a car is
    expected before the last car present leaves: by default whenever one is (the forecast is
    rough: more may come), with ``Policy.trust_forecast`` only when the plan leaves it short (the
    later stages keep the expected cars' energy too: ``row_total``). Trusting the forecast cost
    0.06-0.12 points on the Caltech month at 20-30 kW and saved 17 % of the depot example's
    energy cost. Otherwise the limit binds only because the plan delivers early (a depot's fleet,
    plugged in at 18:00, would charge through the evening peak price every night, 16.93 where
    8.25 buys the same energy).
    """
    if not np.any(lhs >= 0.99 * model.lazy.bound):  # ``lhs``: the network rows' at ``solution``
        return False
    present = ~problem.expected
    stays_until = int(problem.departure[present].max(initial=0))
    if problem.forecast_periods < stays_until:
        return True  # no forecast, or one that ends before a car present leaves
    if any(s.departure is None and s.forecast_weight is None for s in problem.snapshot.sessions):
        return True  # a car whose departure is a guess may leave before the energy deferred
    n_var = model.var_session.size
    served = np.bincount(
        model.var_session, weights=model.energy_coef * solution[:n_var], minlength=problem.sessions
    )
    short = served < problem.need_kwh * (1 - 1e-4) - 1e-6
    during = problem.expected & (problem.arrival < stays_until)
    if not problem.snapshot.policy.trust_forecast and np.any(during):
        return True  # a car expected may bring more than the forecast says
    return bool(np.any(short & (present | during)))


def _hold_early_energy(h: highspy.Highs, model: LpModel, problem: Problem, solution: FloatArray) -> None:
    """Keep the energy-first plan's cumulative energy through each exact period.

    Online, when capacity is short, energy deferred to a cheaper or flatter period is
    energy that later arrivals compete for: capacity left idle now is lost. So the later
    stages (fairness, cost, peak) may reshuffle who charges now, not how much.
    """
    n_var = model.var_session.size
    exact = min(problem.snapshot.policy.exact_periods, problem.periods)
    energy = model.energy_coef * solution[:n_var]
    for b in range(int(np.searchsorted(model.blocks.start, exact))):
        members = np.nonzero(model.var_block <= b)[0].astype(np.int32)
        if members.size == 0:
            continue
        target = float(energy[members].sum())
        h.addRow(target * (1 - _HOLD_SLACK) - 1e-6, _INF, members.size, members, model.energy_coef[members])


def read_back(model: LpModel, problem: Problem, solution: FloatArray) -> FloatArray:
    """Spread block values over their periods (never before arrival or past departure)."""
    n_var = model.var_session.size
    if n_var == 0:
        return np.zeros((problem.sessions, problem.periods))
    blocks = model.blocks
    per_block = np.zeros((problem.sessions, blocks.start.size))
    per_block[model.var_session, model.var_block] = np.clip(solution[:n_var], 0.0, None)
    out = per_block[:, np.repeat(np.arange(blocks.start.size), blocks.length)]
    t = np.arange(problem.periods)
    outside = t >= problem.departure[:, None]
    if problem.arrival.any():  # (online every session is here from period 0)
        outside |= t < problem.arrival[:, None]
    out[outside] = 0.0
    return out
