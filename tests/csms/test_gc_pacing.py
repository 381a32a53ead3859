"""The collection pacer freezes survivors, collects in one pass when due, and unfreezes on stop."""

from __future__ import annotations

import asyncio
import gc

import pytest

from csms.gc_pacing import pace_collections

pytestmark = pytest.mark.asyncio


async def test_survivors_are_frozen_while_running_and_released_on_stop() -> None:
    gc.unfreeze()
    task = asyncio.create_task(pace_collections(freeze_every_s=0.01, collect_every_s=3600.0))
    await asyncio.sleep(0)  # the task starts and freezes what exists
    assert gc.get_freeze_count() > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gc.get_freeze_count() == 0


async def test_a_due_full_collection_frees_cyclic_garbage_that_was_frozen() -> None:
    gc.unfreeze()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    task = asyncio.create_task(pace_collections(freeze_every_s=0.01, collect_every_s=0.0))
    await asyncio.sleep(0)
    del a, b
    freed = asyncio.Event()
    gc.callbacks.append(lambda phase, info: freed.set() if phase == "stop" and info["collected"] else None)
    try:
        await asyncio.wait_for(freed.wait(), timeout=5.0)
    finally:
        gc.callbacks.pop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
