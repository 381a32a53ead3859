"""A station as the smart-charging loop plans it, shared by :mod:`~csms.smart_charging.loop` and
:mod:`~csms.smart_charging.applying`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from csms.smart_charging.state import StationState
from optimizer.network import Network
from optimizer.triggers import Coalescer
from optimizer.types import Schedule, StationSnapshot


@dataclass(slots=True)
class PlannedStation:
    """One station's live state, pending triggers, compiled network, latest plan and work under way."""

    state: StationState
    coalescer: Coalescer
    network: Network
    last_solved_at: datetime | None = None
    schedule: Schedule | None = None
    retrying: set[str] = field(default_factory=set)  # EVSEs waiting for the re-send of a Tx profile
    cycling: bool = False  # a solve-and-send of this station is under way

    def network_for(self, snapshot: StationSnapshot) -> Network | None:
        """The compiled network of the snapshot's tree, ``None`` when it is another (built per solve)."""
        setup, history = self.state.setup, self.state.history
        if snapshot.site.root is setup.site.root and snapshot.evses == setup.solver_evses:
            return self.network
        if history is not None and snapshot.site.root is history.root and snapshot.evses == history.evses:
            return history.network  # with the sessions expected within the horizon
        return None  # planned around an EVSE: a smaller tree
