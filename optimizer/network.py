"""The site's limit tree compiled into constraint data.

Every current limit is ``|sum_i c_ki * I_i| <= m_k``: the magnitude of a phasor sum of
EVSE pilot currents ``I_i >= 0`` [A] with complex coefficients ``c_ki`` (the EVSE's share
of the line current, rotated by its phase angle). Every power limit is
``sum_i p_ki * I_i <= P_k`` with ``p_ki`` in kW/A. The site-power row (the grid
connection, lowered by caps and base load) is the last power row; its limit varies with
time and is passed in.

Phase angles follow the usual convention: line-to-neutral voltages at 0, -120 and +120
degrees; the line-to-line voltage L1-L2 at +30 degrees (so L2-L3 at -90, L3-L1 at +150).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from optimizer.errors import NetworkError
from optimizer.types import Connection, Evse, FeederNode, FloatArray, Site

ComplexArray = npt.NDArray[np.complex128]

_DEG = math.pi / 180.0
_LINE_ANGLE = {0: 0.0, 1: -120.0 * _DEG, 2: 120.0 * _DEG}


def _unit(angle_rad: float) -> complex:
    return complex(math.cos(angle_rad), math.sin(angle_rad))


def line_contributions(connection: Connection) -> dict[int, complex]:
    """Per ampere of pilot current, the phasor current the EVSE adds to lines 0, 1, 2."""
    if connection is Connection.THREE_PHASE:
        return {line: _unit(angle) for line, angle in _LINE_ANGLE.items()}
    single = {Connection.L1: 0, Connection.L2: 1, Connection.L3: 2}
    if connection in single:
        line = single[connection]
        return {line: _unit(_LINE_ANGLE[line])}
    pairs = {Connection.L1_L2: (0, 1, 30.0), Connection.L2_L3: (1, 2, -90.0), Connection.L3_L1: (2, 0, 150.0)}
    src, dst, angle_deg = pairs[connection]
    phasor = _unit(angle_deg * _DEG)
    return {src: phasor, dst: -phasor}


@dataclass(frozen=True, slots=True)
class LinearRows:
    """Linear inner approximation of the current limits: ``A @ I <= b`` (real)."""

    matrix: FloatArray  # (rows, n_evse)
    bound: FloatArray  # (rows,)
    source: npt.NDArray[np.int64]  # current-constraint index each row approximates
    angle: FloatArray  # direction of each row's projection [rad]


@dataclass(frozen=True, slots=True)
class LimitRows:
    """Every row the LP holds to: the linearised current limits, then the power limits."""

    linear: LinearRows
    coef: FloatArray  # (linear rows + power rows, n_evse): ``linear.matrix`` over ``power_coef``
    source: npt.NDArray[np.int64]  # the current limit a linear row approximates; -1 - k for power row k
    angle: FloatArray  # direction of each linear row's projection [rad] (0 for power rows)


@dataclass(frozen=True, slots=True)
class Network:
    """Compiled limits of one site over a fixed ordering of its EVSEs."""

    evse_ids: tuple[str, ...]
    kw_per_a: FloatArray  # (n_evse,)
    current_names: tuple[str, ...]
    current_coef: ComplexArray  # (n_current, n_evse)
    current_limit_a: FloatArray  # (n_current,)
    power_names: tuple[str, ...]  # the last one is the site power row
    power_coef: FloatArray  # (n_power, n_evse) kW per A
    power_limit_kw: FloatArray  # (n_power,); the site row's entry is the normal grid limit
    _linear: dict[float, LinearRows] = field(default_factory=dict, compare=False, repr=False)
    _limit_rows: dict[float, LimitRows] = field(default_factory=dict, compare=False, repr=False)
    # for ``headrooms_a``, computed once: |c|^2 per current limit and EVSE (1 where 0), m^2 per
    # limit, and the power coefficients (1 where 0)
    _coef_sq: FloatArray = field(init=False, compare=False, repr=False)
    _coef_sq_or_1: FloatArray = field(init=False, compare=False, repr=False)
    _limit_sq: FloatArray = field(init=False, compare=False, repr=False)
    _power_or_1: FloatArray = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        coef_sq = np.abs(self.current_coef) ** 2
        object.__setattr__(self, "_coef_sq", coef_sq)
        object.__setattr__(self, "_coef_sq_or_1", np.where(coef_sq > 0, coef_sq, 1.0))
        object.__setattr__(self, "_limit_sq", self.current_limit_a**2)
        object.__setattr__(self, "_power_or_1", np.where(self.power_coef > 0, self.power_coef, 1.0))

    @classmethod
    def build(cls, site: Site, evses: Sequence[Evse]) -> Network:
        evse_ids = tuple(e.evse_id for e in evses)
        if len(set(evse_ids)) != len(evse_ids):
            raise NetworkError("duplicate EVSE ids")
        index = {evse_id: i for i, evse_id in enumerate(evse_ids)}
        n = len(evses)
        kw_per_a = np.array([e.kw_per_a for e in evses], dtype=np.float64)
        placed = site.root.all_evse_ids()
        missing = sorted(set(evse_ids) - set(placed))
        unknown = sorted(set(placed) - set(evse_ids))
        twice = sorted({e for e in placed if placed.count(e) > 1})
        if missing or unknown or twice:
            found = [f"{what} {ids}" for what, ids in (("missing", missing), ("unknown", unknown)) if ids]
            found += [f"under two nodes {twice}"] if twice else []
            raise NetworkError(f"limit tree does not match the EVSEs: {', '.join(found)}")

        names: list[str] = []
        coefs: list[ComplexArray] = []
        limits: list[float] = []
        p_names: list[str] = []
        p_coefs: list[FloatArray] = []
        p_limits: list[float] = []
        # per line (rows) and EVSE (columns), the phasor current it adds per ampere of pilot
        per_line = np.zeros((3, n), dtype=np.complex128)
        by_connection: dict[Connection, dict[int, complex]] = {}
        for i, evse in enumerate(evses):
            contributions = by_connection.get(evse.connection)
            if contributions is None:
                contributions = by_connection[evse.connection] = line_contributions(evse.connection)
            for line, phasor in contributions.items():
                per_line[line, i] += phasor
        below = _members(site.root, index, n)

        for node in site.root.walk():
            inside = below[id(node)]
            lines = np.where(inside, per_line, 0.0)  # the line rows of the EVSEs below the node
            if node.limit_a is not None:
                for k, row in enumerate(lines):
                    if np.any(np.abs(row) > 0):
                        names.append(f"{node.node_id} L{k + 1}")
                        coefs.append(row)
                        limits.append(node.limit_a)
            if node.transformer_ratio is not None and node.primary_limit_a is not None:
                ratio = node.transformer_ratio
                for k in range(3):
                    row = (lines[k] - lines[(k + 2) % 3]) / ratio
                    if np.any(np.abs(row) > 0):
                        names.append(f"{node.node_id} primary L{k + 1}")
                        coefs.append(row)
                        limits.append(node.primary_limit_a)
            if node.limit_kw is not None:
                p_names.append(f"{node.node_id} kW")
                p_coefs.append(np.where(inside, kw_per_a, 0.0))
                p_limits.append(node.limit_kw)
        p_names.append("site kW")
        p_coefs.append(kw_per_a.copy())
        p_limits.append(site.grid_limit_kw)
        if any(limit <= 0 for limit in limits):
            raise NetworkError("current limits must be positive")
        return cls(
            evse_ids=evse_ids,
            kw_per_a=kw_per_a,
            current_names=tuple(names),
            current_coef=np.array(coefs, dtype=np.complex128).reshape(len(coefs), n),
            current_limit_a=np.array(limits, dtype=np.float64),
            power_names=tuple(p_names),
            power_coef=np.array(p_coefs, dtype=np.float64).reshape(len(p_coefs), n),
            power_limit_kw=np.array(p_limits, dtype=np.float64),
        )

    @property
    def constraint_names(self) -> tuple[str, ...]:
        return self.current_names + self.power_names

    def index(self, evse_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        lookup = {evse_id: i for i, evse_id in enumerate(self.evse_ids)}
        return np.array([lookup[e] for e in evse_ids], dtype=np.int64)

    def power_limits(self, site_limit_kw: float | FloatArray) -> FloatArray:
        """Power limits per row; the site row's replaced by ``site_limit_kw`` (scalar or (T,))."""
        site = np.atleast_1d(np.asarray(site_limit_kw, dtype=np.float64))
        out = np.repeat(self.power_limit_kw[:, None], site.shape[0], axis=1)
        out[-1] = site
        return out

    def utilisation(self, current_a: FloatArray, site_limit_kw: float | FloatArray) -> FloatArray:
        """Use over limit for every constraint (current rows, then power rows).

        ``current_a`` is (n_evse,) or (n_evse, T) in ``evse_ids`` order; returns (rows,) or (rows, T).
        A zero or negative site limit counts as infinitely used when anything draws.
        """
        x = np.asarray(current_a, dtype=np.float64)
        flat = x.ndim == 1
        x2 = x[:, None] if flat else x
        site = np.broadcast_to(np.asarray(site_limit_kw, dtype=np.float64), (x2.shape[1],))
        k = self.current_coef.shape[0]
        out = np.empty((k + self.power_coef.shape[0], x2.shape[1]))
        np.abs(self.current_coef @ x2, out=out[:k])
        out[:k] /= self.current_limit_a[:, None]
        power = self.power_coef @ x2
        limits = self.power_limits(site)
        usable = limits > 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(power, np.where(usable, limits, 1.0), out=out[k:])
        if not usable.all():
            out[k:][~usable] = np.where(power > 1e-9, np.inf, 0.0)[~usable]
        return out[:, 0] if flat else out

    def is_feasible(
        self, current_a: FloatArray, site_limit_kw: float | FloatArray, tol: float = 1e-6
    ) -> bool:
        return bool(np.all(self.utilisation(current_a, site_limit_kw) <= 1.0 + tol))

    def headroom_a(self, current_a: FloatArray, evse: int, site_limit_kw: float) -> float:
        """The largest increase of one EVSE's current that keeps every limit [A] (exact)."""
        return float(self.headrooms_a(current_a, np.array([evse], dtype=np.int64), site_limit_kw)[0])

    def headrooms_a(
        self, current_a: FloatArray, evses: npt.NDArray[np.int64], site_limit_kw: float
    ) -> FloatArray:
        """For each EVSE in ``evses`` alone, the largest increase that keeps every limit [A].

        Per current limit this is the positive root of ``|z + c d| = m`` (exact for phasors).
        """
        return self.headrooms(evses, site_limit_kw)(current_a)

    def headrooms(self, evses: npt.NDArray[np.int64], site_limit_kw: float) -> Headrooms:
        """``headrooms_a`` for these EVSEs and site limit, as a function of the currents (for
        callers that ask again and again as the currents change: the EVSEs' terms are taken once)."""
        coef_sq = self._coef_sq[:, evses]
        power = self.power_coef[:, evses]
        limits = self.power_limit_kw.copy()
        limits[-1] = site_limit_kw
        return Headrooms(
            network=self,
            coef=self.current_coef[:, evses],
            coef_sq=coef_sq,
            coef_sq_or_1=self._coef_sq_or_1[:, evses],
            moving=coef_sq > 0,
            powered=power > 0,
            power_or_1=self._power_or_1[:, evses],
            limits_kw=limits,
        )

    def linear_rows(self, tolerance: float) -> LinearRows:
        """``linearise(tolerance)``, computed once per network and tolerance (pass the network to
        ``solve`` to keep it across solves)."""
        rows = self._linear.get(tolerance)
        if rows is None:
            rows = self._linear[tolerance] = self.linearise(tolerance)
        return rows

    def limit_rows(self, tolerance: float) -> LimitRows:
        """The linear rows of ``linear_rows(tolerance)`` and the power rows, stacked (once per tolerance)."""
        rows = self._limit_rows.get(tolerance)
        if rows is None:
            linear = self.linear_rows(tolerance)
            power = self.power_coef.shape[0]
            rows = self._limit_rows[tolerance] = LimitRows(
                linear=linear,
                coef=np.vstack([linear.matrix, self.power_coef]),
                source=np.concatenate([linear.source, -1 - np.arange(power)]),
                angle=np.concatenate([linear.angle, np.zeros(power)]),
            )
            for array in (rows.coef, rows.source, rows.angle):
                array.flags.writeable = False  # shared by every solve on this network
        return rows

    def linearise(self, tolerance: float) -> LinearRows:
        """Inner polygonal approximation of every current limit.

        The terms of a phasor sum with non-negative currents lie in the cone spanned by
        their coefficients' angles; the magnitude is bounded on that arc by projections
        onto directions spaced ``delta`` apart, each bounded by ``m * cos(delta / 2)``, with
        ``cos(delta / 2) = 1 - tolerance``: every solution of the rows meets the true limit
        and at most ``tolerance`` of the limit is given away. Collinear rows are exact.
        """
        return _linearise(self.current_coef, self.current_limit_a, tolerance)


@dataclass(frozen=True, slots=True)
class Headrooms:
    """``Network.headrooms_a`` for fixed EVSEs and site limit: call it with the currents (per EVSE)."""

    network: Network
    coef: ComplexArray  # (current limits, EVSEs): each EVSE's phasor per A
    coef_sq: FloatArray  # |coef|^2
    coef_sq_or_1: FloatArray  # the same, 1 where 0
    moving: npt.NDArray[np.bool_]  # where the EVSE moves the limit's phasor sum at all
    powered: npt.NDArray[np.bool_]  # (power limits, EVSEs): where the EVSE draws on the limit
    power_or_1: FloatArray  # its kW per A, 1 where 0
    limits_kw: FloatArray  # the power limits, the site row's the given site limit

    def __call__(self, current_a: FloatArray) -> FloatArray:
        net = self.network
        z = net.current_coef @ current_a  # (K,)
        b = (np.conj(z)[:, None] * self.coef).real
        slack = (np.abs(z) ** 2 - net._limit_sq)[:, None]
        disc = b * b - self.coef_sq * slack
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = (-b + np.sqrt(np.maximum(disc, 0.0))) / self.coef_sq_or_1
            roots = np.where(self.moving, np.where(disc < 0, 0.0, roots), np.inf)
            best = roots.min(axis=0) if roots.shape[0] else np.full(self.coef.shape[1], np.inf)
            free_kw = (self.limits_kw - net.power_coef @ current_a)[:, None]
            power_room = np.where(self.powered, free_kw / self.power_or_1, np.inf)
        best = np.minimum(best, power_room.min(axis=0))
        return np.asarray(np.maximum(best, 0.0), dtype=np.float64)


def _linearise(current_coef: ComplexArray, current_limit_a: FloatArray, tolerance: float) -> LinearRows:
    """``Network.linearise`` of these current limits."""
    delta = 2.0 * math.acos(1.0 - tolerance)
    rows: list[FloatArray] = []
    bounds: list[float] = []
    source: list[int] = []
    row_angles: list[float] = []
    for k in range(current_coef.shape[0]):
        coef = current_coef[k]
        nz = np.abs(coef) > 1e-12
        term_angles = np.sort(np.angle(coef[nz]))
        start, width = _covering_arc(term_angles)
        if width < 1e-9:
            rows.append((coef * np.exp(-1j * start)).real)
            bounds.append(float(current_limit_a[k]))
            source.append(k)
            row_angles.append(start)
            continue
        count = max(2, math.ceil(width / delta) + 1)
        spacing = width / (count - 1)
        shrink = math.cos(spacing / 2.0)
        thetas = start + np.arange(count) * spacing
        rows.extend((coef * np.exp(-1j * thetas)[:, None]).real)
        bounds.extend([float(current_limit_a[k]) * shrink] * count)
        source.extend([k] * count)
        row_angles.extend(thetas.tolist())
    n = current_coef.shape[1]
    return LinearRows(
        matrix=np.array(rows, dtype=np.float64).reshape(len(rows), n),
        bound=np.array(bounds, dtype=np.float64),
        source=np.array(source, dtype=np.int64),
        angle=np.array(row_angles, dtype=np.float64),
    )


def _members(node: FeederNode, index: dict[str, int], n: int) -> dict[int, npt.NDArray[np.bool_]]:
    """Per node of the tree (by ``id``), which EVSEs are below it (its own and its children's)."""
    out: dict[int, npt.NDArray[np.bool_]] = {}

    def visit(at: FeederNode) -> npt.NDArray[np.bool_]:
        mask = np.zeros(n, dtype=np.bool_)
        mask[[index[evse_id] for evse_id in at.evse_ids]] = True
        for child in at.children:
            mask |= visit(child)
        out[id(at)] = mask
        return mask

    visit(node)
    return out


def _covering_arc(sorted_angles: FloatArray) -> tuple[float, float]:
    """The shortest arc (start, width) containing all angles [rad]."""
    if sorted_angles.size <= 1:
        return (float(sorted_angles[0]) if sorted_angles.size else 0.0), 0.0
    gaps = np.diff(np.concatenate([sorted_angles, [sorted_angles[0] + 2 * math.pi]]))
    widest = int(np.argmax(gaps))
    start = float(sorted_angles[(widest + 1) % sorted_angles.size])
    width = 2 * math.pi - float(gaps[widest])
    if width < 1e-9:
        return start, 0.0
    return start, width
