"""A Caltech-garage-like site built directly as optimizer types (for tests and benchmarks)."""

from __future__ import annotations

from optimizer.types import Connection, Evse, FeederNode, Site

CC_POD = ("CA-322", "CA-493", "CA-496", "CA-320", "CA-495", "CA-321", "CA-323", "CA-494")
AV_POD = ("CA-324", "CA-325", "CA-326", "CA-327", "CA-489", "CA-490", "CA-491", "CA-492")
AB = tuple(f"CA-{i}" for i in (308, 508, 303, 513, 310, 506, 316, 500, 318, 498)) + AV_POD + CC_POD
BC = tuple(f"CA-{i}" for i in (304, 512, 305, 511, 313, 503, 311, 505, 317, 499, 148, 149, 212, 213))
CA = tuple(f"CA-{i}" for i in (307, 509, 309, 507, 306, 510, 315, 501, 319, 497, 312, 504, 314, 502))


def caltech_evses(min_current_a: float = 0.0, step_a: float = 0.1) -> tuple[Evse, ...]:
    conn = [(AB, Connection.L1_L2), (BC, Connection.L2_L3), (CA, Connection.L3_L1)]
    return tuple(
        Evse(evse_id, c, 208.0, 32.0, min_current_a=min_current_a, step=step_a)
        for ids, c in conn
        for evse_id in ids
    )


def caltech_site(transformer_kva: float = 150.0, grid_limit_kw: float | None = None) -> Site:
    pods = set(CC_POD) | set(AV_POD)
    rest = tuple(e for e in AB + BC + CA if e not in pods)
    root = FeederNode(
        "transformer",
        limit_a=transformer_kva * 1000 / 3 / 120,
        transformer_ratio=4.0,
        primary_limit_a=transformer_kva * 1000 / 3 / 277,
        evse_ids=rest,
        children=(
            FeederNode("cc-pod", limit_a=80.0, evse_ids=CC_POD),
            FeederNode("av-pod", limit_a=80.0, evse_ids=AV_POD),
        ),
    )
    return Site(grid_limit_kw=grid_limit_kw if grid_limit_kw is not None else transformer_kva, root=root)
