"""The failsafe current of every EVSE: what each may draw when the central system is gone.

All EVSEs drawing their failsafe current at once keep the site within its normal limits
(and within ``site_limit_kw`` when a tighter one is given, e.g. an active cap). The
charger holds it as its default profile, underneath the solver's expiring profiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optimizer.allocate import PeriodAllocator
from optimizer.network import Network
from optimizer.types import Evse, Site


def failsafe_currents_a(
    site: Site, evses: Sequence[Evse], site_limit_kw: float | None = None, network: Network | None = None
) -> dict[str, float]:
    """Equal share of the limits among all EVSEs at once, stepped, 0 or at least the minimum."""
    net = network if network is not None else Network.build(site, evses)
    by_id = {e.evse_id: e for e in evses}
    ordered = [by_id[evse_id] for evse_id in net.evse_ids]
    cols = np.arange(len(ordered), dtype=np.int64)
    upper = np.array([e.max_current_a for e in ordered])
    min_a = np.array([e.min_current_a for e in ordered])
    step_a = np.array([e.step_a for e in ordered])
    limit = site.grid_limit_kw if site_limit_kw is None else min(site_limit_kw, site.grid_limit_kw)
    alloc = PeriodAllocator(net, cols, upper, min_a, step_a, limit)
    # equal share; where minimum currents do not fit for everybody, the last EVSEs get 0
    current = alloc.equal_share(np.ones(len(ordered)), list(range(len(ordered))))
    return {evse.evse_id: float(current[i]) for i, evse in enumerate(ordered)}
