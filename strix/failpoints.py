"""Named points where a test can freeze a worker, to prove that a paused process writes nothing.

Off unless ``STRIX_FAILPOINTS`` names a point, which only the test suite sets, for worker processes it
starts itself: ``name:stop`` or ``name:hang``, comma-separated; ``name#N:stop`` acts only the N-th time
the point is reached. ``stop`` sends SIGSTOP to the whole process (every thread freezes, as under a
debugger or a stalled VM) until someone sends SIGCONT; ``hang`` blocks the calling thread alone, so
that the heartbeat thread keeps beating (a job that is alive but makes no progress); ``sleepN`` pauses
the calling thread N seconds (time for a test to act while the job is surely under way).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

_reached: Counter = Counter()


def _action(name: str, count: int) -> str | None:
    for item in os.environ.get("STRIX_FAILPOINTS", "").split(","):
        point, _, action = item.strip().partition(":")
        point, _, nth = point.partition("#")
        if point == name and (not nth or int(nth) == count):
            return action or "stop"
    return None


def reached(name: str) -> None:
    if not os.environ.get("STRIX_FAILPOINTS"):
        return
    _reached[name] += 1
    action = _action(name, _reached[name])
    if action is None:
        return
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "hang":
        threading.Event().wait()
    elif action.startswith("sleep"):
        time.sleep(float(action[len("sleep") :]))
