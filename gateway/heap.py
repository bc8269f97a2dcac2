"""The garbage collector, set for a long-running server process (issue 18).

After start-up a worker holds ~200,000 long-lived container objects (the standard, the
policy sets, compiled mappings and validators, modules). CPython's cyclic collector walks all
of them on every full collection, which came every ~800 requests and took ~170 ms each, and
ran its youngest generation every 700 net allocations, a few times per request. Measured in
one process (``bench.e2e.inprocess``, docs/performance.md §6): about 10–25 % of the CPU per
request went to the collector.

So, once the app has started (:func:`settle`):

* everything alive is moved out of the collector's reach (``gc.freeze()``). Reference
  counting still frees those objects as usual; only a reference cycle among them would never
  be collected, and start-up objects live as long as the process anyway;
* the youngest generation is collected after ``young_threshold`` net allocations instead of
  700: a request's own objects are nearly all freed by reference counting before then.

Only ``gateway serve`` does this (:func:`gateway.app.create_served_app`). Tests and tools
that build apps in one process keep Python's defaults, so that the collector still finds
(and warns about) whatever they leave behind.
"""

from __future__ import annotations

import gc

import structlog

__all__ = ["settle"]

log = structlog.get_logger(__name__)


def settle(young_threshold: int) -> None:
    """Collect once, freeze what is left and set the youngest generation's threshold."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
    log.debug("heap settled", frozen=gc.get_freeze_count(), young_threshold=young_threshold)
