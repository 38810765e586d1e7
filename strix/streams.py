"""Keeping two stages of a pipeline busy at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_END = object()


def prefetched(blocks: Iterable[bytes], depth: int = 4) -> Iterator[bytes]:
    """The same blocks, produced ahead on a thread of their own (at most ``depth`` waiting).

    Decrypting and decompressing release the GIL, and so does writing to a pipe: with the producer on
    its own thread, the consumer (pg_restore's stdin) is fed while the next blocks are being opened.
    An error in the producer is raised here, in order, after the blocks it produced before it.
    """
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        waiting.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            waiting.put(_END)
        except BaseException as e:  # handed to the consumer
            waiting.put(e)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer stopped early (or failed): let the producer end
        thread.join(timeout=5)
