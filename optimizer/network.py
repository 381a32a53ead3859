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

    @classmethod
    def build(cls, site: Site, evses: Sequence[Evse]) -> Network:
        evse_ids = tuple(e.evse_id for e in evses)
        if len(set(evse_ids)) != len(evse_ids):
            raise NetworkError("duplicate EVSE ids")
        index = {evse_id: i for i, evse_id in enumerate(evse_ids)}
        by_id = {e.evse_id: e for e in evses}
        n = len(evses)
        kw_per_a = np.array([e.kw_per_a for e in evses], dtype=np.float64)
        placed = site.root.all_evse_ids()
        missing = sorted(set(evse_ids) - set(placed))
        unknown = sorted(set(placed) - set(evse_ids))
        if missing or unknown or len(set(placed)) != len(placed):
            raise NetworkError(f"limit tree does not match the EVSEs: missing {missing}, unknown {unknown}")

        names: list[str] = []
        coefs: list[ComplexArray] = []
        limits: list[float] = []
        p_names: list[str] = []
        p_coefs: list[FloatArray] = []
        p_limits: list[float] = []

        def line_rows(node: FeederNode) -> list[ComplexArray]:
            rows = [np.zeros(n, dtype=np.complex128) for _ in range(3)]
            for evse_id in node.all_evse_ids():
                for line, phasor in line_contributions(by_id[evse_id].connection).items():
                    rows[line][index[evse_id]] += phasor
            return rows

        for node in site.root.walk():
            lines = line_rows(node)
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
                row_kw = np.zeros(n, dtype=np.float64)
                for evse_id in node.all_evse_ids():
                    row_kw[index[evse_id]] = kw_per_a[index[evse_id]]
                p_names.append(f"{node.node_id} kW")
                p_coefs.append(row_kw)
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
        mags = np.abs(self.current_coef @ x2) / self.current_limit_a[:, None]
        power = self.power_coef @ x2
        limits = self.power_limits(site)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(
                limits > 0, power / np.where(limits > 0, limits, 1.0), np.where(power > 1e-9, np.inf, 0)
            )
        out = np.vstack([mags, ratio])
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
        z = self.current_coef @ current_a  # (K,)
        c = self.current_coef[:, evses]  # (K, m)
        cc = np.abs(c) ** 2
        b = (np.conj(z)[:, None] * c).real
        slack = (np.abs(z) ** 2 - self.current_limit_a**2)[:, None]
        disc = b * b - cc * slack
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = (-b + np.sqrt(np.maximum(disc, 0.0))) / np.where(cc > 0, cc, 1.0)
        roots = np.where(cc > 0, np.where(disc < 0, 0.0, roots), np.inf)
        best = roots.min(axis=0) if roots.shape[0] else np.full(evses.size, np.inf)
        p = self.power_coef[:, evses]
        limits = self.power_limit_kw.copy()
        limits[-1] = site_limit_kw
        free_kw = (limits - self.power_coef @ current_a)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            power_room = np.where(p > 0, free_kw / np.where(p > 0, p, 1.0), np.inf)
        best = np.minimum(best, power_room.min(axis=0))
        return np.asarray(np.maximum(best, 0.0), dtype=np.float64)

    def linear_rows(self, tolerance: float) -> LinearRows:
        """``linearise(tolerance)``, computed once per network and tolerance."""
        rows = self._linear.get(tolerance)
        if rows is None:
            rows = self._linear[tolerance] = self.linearise(tolerance)
        return rows

    def linearise(self, tolerance: float) -> LinearRows:
        """Inner polygonal approximation of every current limit.

        The terms of a phasor sum with non-negative currents lie in the cone spanned by
        their coefficients' angles; the magnitude is bounded on that arc by projections
        onto directions spaced ``delta`` apart, each bounded by ``m * cos(delta / 2)``, with
        ``cos(delta / 2) = 1 - tolerance``: every solution of the rows meets the true limit
        and at most ``tolerance`` of the limit is given away. Collinear rows are exact.
        """
        delta = 2.0 * math.acos(1.0 - tolerance)
        rows: list[FloatArray] = []
        bounds: list[float] = []
        source: list[int] = []
        row_angles: list[float] = []
        for k in range(self.current_coef.shape[0]):
            coef = self.current_coef[k]
            nz = np.abs(coef) > 1e-12
            term_angles = np.sort(np.angle(coef[nz]))
            start, width = _covering_arc(term_angles)
            if width < 1e-9:
                rows.append((coef * np.exp(-1j * start)).real)
                bounds.append(float(self.current_limit_a[k]))
                source.append(k)
                row_angles.append(start)
                continue
            count = max(2, math.ceil(width / delta) + 1)
            spacing = width / (count - 1)
            shrink = math.cos(spacing / 2.0)
            for j in range(count):
                theta = start + j * spacing
                rows.append((coef * np.exp(-1j * theta)).real)
                bounds.append(float(self.current_limit_a[k]) * shrink)
                source.append(k)
                row_angles.append(theta)
        n = self.current_coef.shape[1]
        return LinearRows(
            matrix=np.array(rows, dtype=np.float64).reshape(len(rows), n),
            bound=np.array(bounds, dtype=np.float64),
            source=np.array(source, dtype=np.int64),
            angle=np.array(row_angles, dtype=np.float64),
        )


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
