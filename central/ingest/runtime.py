"""What ingest's threads share with the interpreter: the garbage collector's tuning while ingest runs, and the
wire time of an arrival (formatted thousands of times a second)."""

from __future__ import annotations

import gc
import math
import time

# The garbage collector's thresholds while ingest runs (CPython's default is 700, 10, 10): see
# tune_garbage_collector.
GC_THRESHOLDS = (10_000, 50, 100)


def tune_garbage_collector() -> tuple[int, int, int]:
    """Each message leaves some dozens of container objects behind. With CPython's default thresholds that
    runs a collection every few dozen messages, and the older generations' collections scan every object of
    the process (the web app, pydantic's schemas): a quarter of the writer's time at thousands of messages a
    second. What lives at start-up is set aside (``gc.freeze``, after a collection so that no garbage is kept
    with it), and collections run less often. Reference counting frees almost everything ingest makes; the
    collector is only for cycles. Returns the thresholds before, for ``restore_garbage_collector``."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return before


def restore_garbage_collector(thresholds: tuple[int, int, int]) -> None:
    gc.unfreeze()
    gc.set_threshold(*thresholds)


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")  # the last whole second formatted, shared by threads


def wire_time(epoch_s: float) -> str:
    """``timeutil.to_wire(datetime.fromtimestamp(epoch_s, UTC))``, at a third of its cost: every message's
    arrival time is formatted, thousands a second."""
    global _second
    fraction, whole = math.modf(epoch_s)  # rounded as datetime.fromtimestamp rounds, to the microsecond
    seconds, micros = int(whole), round(fraction * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    cached, text = _second  # one read: another thread may replace the pair meanwhile, never half of it
    if cached != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second = (seconds, text)
    return f"{text}.{micros // 1000:03d}Z"
