"""The site left for the controllable EVSEs when some EVSEs draw a current we cannot change.

An EVSE whose charger refuses profiles, or that draws more than it is allowed, is taken out of
the solve and its current is reserved: every limit above it is lowered by what it may draw.
Pure: no I/O. The reduction is conservative (never more room than the exact phasor limits
leave), because a magnitude of a sum is at most the sum of the magnitudes: an EVSE adds at most
its current to each line it uses, at most its current times the largest line-difference it
makes over the ratio to a transformer's primary, and its power to every power limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from optimizer.network import line_contributions
from optimizer.types import CapWindow, Evse, FeederNode, Site

_MIN_LIMIT_A = 1e-6  # current limits must stay positive; this leaves nothing for the others


def reserve(
    site: Site, evses: Sequence[Evse], reserved_a: Mapping[str, float]
) -> tuple[Site, tuple[Evse, ...]]:
    """``site`` without the EVSEs in ``reserved_a`` and with their currents [A] taken off every limit.

    Returns the reduced site and the EVSEs still to schedule.
    """
    if not reserved_a:
        return site, tuple(evses)
    by_id = {e.evse_id: e for e in evses}
    unknown = sorted(set(reserved_a) - set(by_id))
    if unknown:
        raise KeyError(f"unknown EVSEs reserved: {unknown}")
    reserved_kw = sum(by_id[e].kw_per_a * max(a, 0.0) for e, a in reserved_a.items())
    root = _reduce(site.root, by_id, reserved_a)
    caps = tuple(
        CapWindow(
            start=cap.start,
            end=cap.end,
            limit_kw=max(cap.cap_kw(site.grid_limit_kw) - reserved_kw, 0.0),
            source=cap.source,
        )
        for cap in site.caps
    )
    reduced = replace(site, grid_limit_kw=max(site.grid_limit_kw - reserved_kw, 0.0), root=root, caps=caps)
    return reduced, tuple(e for e in evses if e.evse_id not in reserved_a)


def _reduce(node: FeederNode, by_id: Mapping[str, Evse], reserved_a: Mapping[str, float]) -> FeederNode:
    below = [e for e in node.all_evse_ids() if e in reserved_a]
    line_a = sum(max(reserved_a[e], 0.0) for e in below)
    power_kw = sum(by_id[e].kw_per_a * max(reserved_a[e], 0.0) for e in below)
    primary_a = 0.0
    if node.transformer_ratio is not None:
        primary_a = sum(max(reserved_a[e], 0.0) * _primary_factor(by_id[e]) for e in below)
        primary_a /= node.transformer_ratio
    return replace(
        node,
        limit_a=None if node.limit_a is None else max(node.limit_a - line_a, _MIN_LIMIT_A),
        limit_kw=None if node.limit_kw is None else max(node.limit_kw - power_kw, 0.0),
        primary_limit_a=(
            None if node.primary_limit_a is None else max(node.primary_limit_a - primary_a, _MIN_LIMIT_A)
        ),
        evse_ids=tuple(e for e in node.evse_ids if e not in reserved_a),
        children=tuple(_reduce(child, by_id, reserved_a) for child in node.children),
    )


def _primary_factor(evse: Evse) -> float:
    """The largest |c_k - c_(k+2)| over lines k: what one ampere adds to a primary line current."""
    lines = line_contributions(evse.connection)
    return max(abs(lines.get(k, 0j) - lines.get((k + 2) % 3, 0j)) for k in range(3))
