"""Keep Python's full garbage collections off the request path of a busy server.

With 10,000 chargers connected, each full collection walked every long-lived session
object and paused the event loop for 0.6-1 s every ~40 s (the load benchmark matched the
pauses to its latency tail), while freeing almost nothing. Freezing moves the objects that
have survived so far out of the collector's reach, so later collections only look at new
ones. Frozen objects that later become cyclic garbage (a disconnected charger's session)
are not collected until they are unfrozen, so once per ``collect_every_s`` everything is
unfrozen and collected in one pass: one pause an hour instead of ninety.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


async def pace_collections(freeze_every_s: float, collect_every_s: float) -> None:
    """Until cancelled: freeze survivors every ``freeze_every_s``, collect all every ``collect_every_s``."""
    gc.freeze()
    last_collect = time.monotonic()
    try:
        while True:
            await asyncio.sleep(freeze_every_s)
            if time.monotonic() - last_collect >= collect_every_s:
                began = time.perf_counter()
                gc.unfreeze()
                freed = gc.collect()
                last_collect = time.monotonic()
                log.info("full collection: %d freed in %.0f ms", freed, 1e3 * (time.perf_counter() - began))
            gc.freeze()
    finally:
        gc.unfreeze()
