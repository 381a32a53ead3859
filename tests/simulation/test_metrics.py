"""Report arithmetic on hand-checked numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fairwatt.simulation.engine import SessionOutcome
from fairwatt.simulation.metrics import jain_index, session_metrics, share_served
from fairwatt.simulation.sessions import SessionRecord

T0 = datetime(2019, 3, 4, 16, tzinfo=UTC)


def outcome(requested_kwh: float, delivered_kwh: float, changes: int = 0) -> SessionOutcome:
    record = SessionRecord("s", "A", T0, T0.replace(hour=20), None, requested_kwh, None, 2)
    return SessionOutcome(record, delivered_kwh, changes)


def test_jain_index_hand_checked() -> None:
    assert jain_index([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0]) == pytest.approx(0.5)  # one gets everything: 1/n
    assert jain_index([0.5, 1.0]) == pytest.approx(1.5**2 / (2 * 1.25))  # 0.9
    assert jain_index([1.0, 1.0, 0.72]) == pytest.approx(2.72**2 / (3 * 2.5184))  # 0.97925
    assert jain_index([0.0, 0.0]) == 1.0
    assert jain_index([]) is None


def test_share_served_caps_at_one_and_zero_request_is_served() -> None:
    assert share_served(outcome(10.0, 12.0)) == 1.0
    assert share_served(outcome(10.0, 4.0)) == pytest.approx(0.4)
    assert share_served(outcome(0.0, 0.0)) == 1.0


def test_session_metrics_hand_checked() -> None:
    # 10 of 10, 9.9 of 10 (99 %: counts as served), 5 of 20
    rows = [outcome(10.0, 10.0, 2), outcome(10.0, 9.9, 4), outcome(20.0, 5.0, 0)]
    got = session_metrics(rows)
    assert got["sessions"] == 3
    assert got["requested_kwh"] == pytest.approx(40.0)
    assert got["delivered_kwh"] == pytest.approx(24.9)
    assert got["energy_delivered_pct"] == pytest.approx(62.25)
    assert got["sessions_served_pct"] == pytest.approx(200.0 / 3)
    assert got["jain_index"] == pytest.approx((1 + 0.99 + 0.25) ** 2 / (3 * (1 + 0.99**2 + 0.25**2)))
    assert got["profile_changes_per_session"] == pytest.approx(2.0)


def test_session_metrics_with_no_sessions() -> None:
    got = session_metrics([])
    assert got["energy_delivered_pct"] is None
    assert got["sessions_served_pct"] is None
    assert got["jain_index"] is None
