"""Named points where a test can freeze a worker, to prove that a paused process writes nothing.

Off unless ``STRIX_FAILPOINTS`` names a point (``name:stop`` or ``name:hang``, comma-separated), which
only the test suite sets, for worker processes it starts itself. ``stop`` sends SIGSTOP to the whole
process (every thread freezes, as under a debugger or a stalled VM) until someone sends SIGCONT;
``hang`` blocks the calling thread alone, so that the heartbeat thread keeps beating (a job that is
alive but makes no progress).
"""

from __future__ import annotations

import os
import signal
import threading


def _actions() -> dict[str, str]:
    actions = {}
    for item in os.environ.get("STRIX_FAILPOINTS", "").split(","):
        name, _, action = item.strip().partition(":")
        if name:
            actions[name] = action or "stop"
    return actions


def reached(name: str) -> None:
    action = _actions().get(name)
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "hang":
        threading.Event().wait()
