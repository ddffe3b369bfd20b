"""The cyclic garbage collector, paused while a stage builds big acyclic structures.

Every stage may use it (tests/test_layout.py puts it in the base stages): the
compiler around its builds, the CLI around loading, the enforcer around the JSON
trees of a big ruleset.

Building the shared stage of a large tailnet allocates millions of small
objects (intervals, entries, rules, bitsets) and no reference cycles: reference
counting frees them. The collector still walks the young objects every 700
allocations and the whole heap now and then: about a fifth of a 10k-node dense
build (docs/performance.md). Pausing it for the build and restoring it after
leaves any cycle made meanwhile to the next collection; nothing is lost.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_collector() -> Iterator[None]:
    """Run the block with automatic collection off; restore the previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What the block allocated sits in the youngest generation, and the first
        # collection after `enable` would walk all of it (~1 s for a 10k dense
        # stage). freeze + unfreeze moves every tracked object to the oldest
        # generation without walking it; full collections still visit them.
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()
