"""Pure mapping of events to caps and prices, checked against small hand-computed cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from openleadr import objects
from openleadr.messaging import create_message, parse_message

from demand_response.config import OptType, Program
from demand_response.events import DrEvent, Interval, Signal, Targets, from_json, from_openadr
from demand_response.mapping import (
    RAMP_STEPS,
    Audience,
    PriceChange,
    overlay_prices,
    plan,
    start_offset,
    supported,
)
from optimizer.types import CapWindow, PricePeriod

T0 = datetime(2026, 7, 1, 17, 0, tzinfo=UTC)
H = timedelta(hours=1)
PROGRAM = Program(
    name="grid",
    vtn_url="http://vtn",
    ven_name="ven-a",
    resources=(("north", ("north",)), ("feeder", ("south", "east"))),
    groups=("fleet",),
    simple_levels=((1, 0.2), (2, 0.5), (3, 1.0)),
    randomize=True,
)
AUDIENCES = {"grid": Audience(PROGRAM, "VEN-ID-1")}
EVERYONE = Targets()
LIMITS = {"north": 100.0, "south": 60.0, "east": 20.0, "elsewhere": 50.0}


def event(
    name: str,
    kind: str,
    values: tuple[float, ...] = (1.0,),
    *,
    targets: Targets = EVERYONE,
    **fields: object,
) -> DrEvent:
    intervals = tuple(Interval(T0 + i * H, H, v) for i, v in enumerate(values))
    base = DrEvent(
        program="grid",
        event_id=fields.pop("event_id", "e1"),  # type: ignore[arg-type]
        modification_number=0,
        start=T0,
        duration=H * len(values),
        signals=(Signal(name, kind, intervals),),
        targets=targets,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def caps_kw(station: str, *events: DrEvent) -> list[tuple[datetime, datetime, float]]:
    mapped = plan(events, LIMITS, AUDIENCES)
    return [(c.start, c.end, round(c.cap_kw(LIMITS[station]), 6)) for c in mapped.caps.get(station, ())]


@pytest.mark.parametrize(("level", "kw"), [(1, 80.0), (2, 50.0), (3, 0.0)])
def test_simple_levels_cut_the_share_the_program_maps(level: int, kw: float) -> None:
    assert caps_kw("north", event("SIMPLE", "level", (level,))) == [(T0, T0 + H, kw)]


def test_simple_level_zero_is_no_cap() -> None:
    assert caps_kw("north", event("SIMPLE", "level", (0,))) == []


def test_each_interval_of_a_signal_is_its_own_window() -> None:
    assert caps_kw("north", event("SIMPLE", "level", (1, 2, 0))) == [
        (T0, T0 + H, 80.0),
        (T0 + H, T0 + 2 * H, 50.0),
    ]


def test_load_dispatch_setpoint_is_split_over_a_resource_by_grid_limit() -> None:
    dispatch = event("LOAD_DISPATCH", "setpoint", (40.0,), targets=Targets(resource_ids=("feeder",)))
    assert caps_kw("south", dispatch) == [(T0, T0 + H, 30.0)]  # 40 kW * 60 / 80
    assert caps_kw("east", dispatch) == [(T0, T0 + H, 10.0)]
    assert caps_kw("north", dispatch) == []  # not targeted


@pytest.mark.parametrize(
    ("name", "kind", "value", "kw"),
    [
        ("LOAD_DISPATCH", "delta", -30.0, 70.0),
        ("LOAD_DISPATCH", "multiplier", 0.25, 25.0),
        ("LOAD_CONTROL", "x-loadControlCapacity", 0.6, 60.0),
        ("LOAD_CONTROL", "x-loadControlLevelOffset", 2.0, 50.0),
        ("LOAD_CONTROL", "x-loadControlPercentOffset", -20.0, 80.0),
        ("LOAD_CONTROL", "x-loadControlSetpoint", 35.0, 35.0),
    ],
)
def test_load_signals_become_caps(name: str, kind: str, value: float, kw: float) -> None:
    assert caps_kw("north", event(name, kind, (value,), targets=Targets(resource_ids=("north",)))) == [
        (T0, T0 + H, kw)
    ]


def test_unknown_signal_types_give_no_cap() -> None:
    assert caps_kw("north", event("LOAD_CONTROL", "x-somethingElse", (5.0,))) == []


def test_targets_select_our_stations() -> None:
    everyone = ("north", "south", "east")
    for targets, expected in [
        (Targets(), everyone),
        (Targets(ven_ids=("VEN-ID-1",)), everyone),
        (Targets(ven_ids=("ven-a",)), everyone),
        (Targets(group_ids=("fleet",)), everyone),
        (Targets(ven_ids=("someone-else",)), ()),
        (Targets(group_ids=("other",), resource_ids=("north",)), ("north",)),
    ]:
        mapped = plan([event("SIMPLE", "level", targets=targets)], LIMITS, AUDIENCES)
        assert tuple(mapped.caps) == expected, targets
    assert "elsewhere" not in plan([event("SIMPLE", "level")], LIMITS, AUDIENCES).caps


def test_a_signal_with_its_own_resource_target_caps_only_that_resource() -> None:
    signal = Signal("SIMPLE", "level", (Interval(T0, H, 2.0),), Targets(resource_ids=("north",)))
    mapped = plan([replace(event("SIMPLE", "level"), signals=(signal,))], LIMITS, AUDIENCES)
    assert tuple(mapped.caps) == ("north",)


def test_manual_events_name_their_stations() -> None:
    manual = replace(event("SIMPLE", "level"), program="manual", stations=("east", "elsewhere"))
    mapped = plan([manual], LIMITS, AUDIENCES)
    assert set(mapped.caps) == {"east", "elsewhere"}
    assert mapped.caps["east"][0].source == "dr:manual:e1"


def test_test_cancelled_and_opted_out_events_are_not_applied() -> None:
    base = event("SIMPLE", "level")
    for skipped in (
        replace(base, test_event=True),
        base.cancelled(),
        replace(base, opt=OptType.OPT_OUT),
    ):
        assert plan([skipped], LIMITS, AUDIENCES).caps == {}
    assert plan([replace(base, opt=OptType.OPT_IN)], LIMITS, AUDIENCES).caps


def test_a_higher_priority_event_rules_alone_where_they_overlap() -> None:
    low = event("SIMPLE", "level", (3, 3), event_id="low", priority=0)  # 0: unset, lowest
    high = replace(event("SIMPLE", "level", (1,), event_id="high", priority=1), start=T0 + H / 2)
    high = replace(high, signals=(Signal("SIMPLE", "level", (Interval(T0 + H / 2, H, 1.0),)),))
    assert caps_kw("north", low, high) == [
        (T0, T0 + H / 2, 0.0),
        (T0 + H / 2, T0 + 3 * H / 2, 80.0),  # the level-3 cut does not apply under the priority-1 event
        (T0 + 3 * H / 2, T0 + 2 * H, 0.0),
    ]


def test_equal_priorities_both_apply() -> None:
    a = event("SIMPLE", "level", (1,), event_id="a", priority=2)
    b = event(
        "LOAD_DISPATCH",
        "setpoint",
        (60.0,),
        event_id="b",
        priority=2,
        targets=Targets(resource_ids=("north",)),
    )
    windows = caps_kw("north", a, b)
    assert sorted(kw for *_, kw in windows) == [60.0, 80.0]


def test_randomisation_offset_is_inside_the_window_and_stable() -> None:
    randomised = event("SIMPLE", "level", start_after=timedelta(minutes=10))
    offset = start_offset("ven-a", randomised)
    assert timedelta(0) <= offset < timedelta(minutes=10)
    assert start_offset("ven-a", replace(randomised, modification_number=3)) == offset  # updates keep it
    others = {start_offset(f"ven-{i}", randomised) for i in range(20)}
    assert len(others) > 10  # VENs spread out
    assert caps_kw("north", randomised) == [(T0 + offset, T0 + H + offset, 80.0)]
    fixed = replace(PROGRAM, randomize=False)
    mapped = plan([randomised], LIMITS, {"grid": Audience(fixed)})
    assert mapped.caps["north"][0].start == T0


def test_ramp_up_and_recovery_step_the_cap() -> None:
    ramped = event("SIMPLE", "level", (3,), ramp_up=timedelta(minutes=20), recovery=timedelta(minutes=40))
    windows = caps_kw("north", ramped)
    assert len(windows) == 1 + 2 * RAMP_STEPS
    ramp = [w for w in windows if w[1] <= T0]
    recovery = [w for w in windows if w[0] >= T0 + H]
    assert [kw for *_, kw in ramp] == [80.0, 60.0, 40.0, 20.0]
    assert ramp[0][0] == T0 - timedelta(minutes=20)
    assert ramp[-1][1] == T0
    assert [kw for *_, kw in recovery] == [20.0, 40.0, 60.0, 80.0]
    assert recovery[-1][1] == T0 + H + timedelta(minutes=40)


def test_price_signals_overlay_the_station_prices() -> None:
    base = (PricePeriod(T0 - H, 0.30), PricePeriod(T0 + H, 0.20))
    changes = (PriceChange(T0 - H / 2, T0 + 3 * H / 2, "price", 1.0),)
    assert overlay_prices(base, changes) == (
        PricePeriod(T0 - H, 0.30),
        PricePeriod(T0 - H / 2, 1.0),
        PricePeriod(T0 + 3 * H / 2, 0.20),
    )
    relative = overlay_prices(base, (PriceChange(T0, T0 + 2 * H, "priceRelative", 0.5),))
    assert relative == (
        PricePeriod(T0 - H, 0.30),
        PricePeriod(T0, 0.80),
        PricePeriod(T0 + H, 0.70),
        PricePeriod(T0 + 2 * H, 0.20),
    )
    multiplied = overlay_prices(base, (PriceChange(T0, T0 + H, "priceMultiplier", 2.0),))
    assert multiplied == (PricePeriod(T0 - H, 0.30), PricePeriod(T0, 0.60), PricePeriod(T0 + H, 0.20))
    priced = plan([event("ELECTRICITY_PRICE", "price", (0.9, 0.4))], LIMITS, AUDIENCES)
    assert priced.caps == {}
    assert priced.prices["north"] == (
        PriceChange(T0, T0 + H, "price", 0.9),
        PriceChange(T0 + H, T0 + 2 * H, "price", 0.4),
    )


def test_openadr_events_are_read_with_every_field() -> None:
    now = T0
    raw = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="e7", modification_number=2, market_context="http://mc", event_status="far", priority=3
        ),
        active_period=objects.ActivePeriod(
            dtstart=now,
            duration=timedelta(minutes=10),
            tolerance={"startafter": timedelta(minutes=2)},
            ramp_up_period=timedelta(seconds=30),
            recovery_period=timedelta(seconds=60),
        ),
        event_signals=[
            objects.EventSignal(
                intervals=[
                    objects.Interval(dtstart=now, duration=timedelta(minutes=5), signal_payload=0.5, uid=0),
                    objects.Interval(
                        dtstart=now + timedelta(minutes=5),
                        duration=timedelta(minutes=5),
                        signal_payload=0.25,
                        uid=1,
                    ),
                ],
                signal_name="LOAD_CONTROL",
                signal_type="x-loadControlCapacity",
                signal_id="s1",
            )
        ],
        targets=[objects.Target(ven_id="v1"), objects.Target(group_id="g1")],
        response_required="always",
    )
    _, payload = parse_message(
        create_message("oadrDistributeEvent", request_id="r", vtn_id="VTN", events=[raw])
    )
    read = from_openadr("grid", payload["events"][0])
    assert (read.event_id, read.modification_number, read.priority) == ("e7", 2, 3)
    assert (read.start, read.duration) == (now, timedelta(minutes=10))
    assert (read.start_after, read.ramp_up, read.recovery) == (
        timedelta(minutes=2),
        timedelta(seconds=30),
        timedelta(minutes=1),
    )
    assert read.targets == Targets(ven_ids=("v1",), group_ids=("g1",))
    assert read.signals[0].intervals == (
        Interval(now, timedelta(minutes=5), 0.5),
        Interval(now + timedelta(minutes=5), timedelta(minutes=5), 0.25),
    )
    assert not read.test_event  # (openleadr recomputes the status from its clock)
    assert from_json(read.to_json()) == read
    stored = replace(read, opt=OptType.OPT_OUT, stations=("a",), created_by="op-1")
    assert from_json(stored.to_json()) == stored


def test_caps_are_cap_windows_tagged_with_their_event() -> None:
    mapped = plan([event("SIMPLE", "level")], LIMITS, AUDIENCES)
    assert mapped.caps["north"] == (CapWindow(T0, T0 + H, limit_kw=80.0, source="dr:grid:e1"),)


def _price_event(measurement: objects.Measurement | None) -> DrEvent:
    raw = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="p1", modification_number=0, market_context="http://mc", event_status="far"
        ),
        active_period=objects.ActivePeriod(dtstart=T0, duration=H),
        event_signals=[
            objects.EventSignal(
                intervals=[objects.Interval(dtstart=T0, duration=H, signal_payload=250.0, uid=0)],
                signal_name="ELECTRICITY_PRICE",
                signal_type="price",
                signal_id="s1",
                measurement=measurement,
            )
        ],
        targets=[objects.Target(ven_id="v1")],
    )
    _, payload = parse_message(
        create_message("oadrDistributeEvent", request_id="r", vtn_id="VTN", events=[raw])
    )
    return from_openadr("grid", payload["events"][0])


def test_a_price_applies_per_kwh_only_and_in_its_scale() -> None:
    # itemBase currencyPerKWh with siScaleCode "m": 250 milli-units per kWh is 0.25 per kWh
    per_kwh = _price_event(
        objects.Measurement("currencyPerKWh", "currencyPerKWh", "EUR", scale="m", ns="oadr")
    )
    assert (per_kwh.signals[0].unit, per_kwh.signals[0].intervals[0].value) == ("currencyPerKWh:EUR", 0.25)
    assert supported(per_kwh.signals[0])
    # a price per kW (a demand charge) or per therm is no energy price: nothing is applied
    per_kw = _price_event(
        objects.Measurement("currencyPerKW", "currencyPerKW", "EUR", scale="none", ns="oadr")
    )
    per_therm = _price_event(
        objects.Measurement("currencyPerThm", "currency", "USD", scale="none", ns="oadr")
    )
    assert not supported(per_kw.signals[0])
    assert not supported(per_therm.signals[0])
    assert plan([replace(per_kw, targets=EVERYONE)], LIMITS, AUDIENCES).prices == {}
    # no item base: per kWh in the station's currency, as before
    bare = _price_event(None)
    assert supported(bare.signals[0])
    assert bare.signals[0].intervals[0].value == 250.0
