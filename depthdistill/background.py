"""Work on a background thread, in order: the project's one pair of thread / queue helpers.

- `BackgroundIterator(source, depth)`: iterates `source` on a daemon thread, up to `depth`
  items ahead; same items, same order. An exception in `source` is re-raised by the `next()`
  that would have returned the item. `close()` stops the thread (for endless sources).
  The trainer decodes batches this way; the labeling actor decodes and cuts views.
- `BackgroundConsumer(consume, maxsize)`: a context manager; `put(item)` hands an item to
  `consume` on a daemon thread (blocking when `maxsize` wait, which bounds memory) and re-raises
  the first error `consume` met, so the producer stops early; leaving the context drains the
  queue and joins; an error met there is raised unless the body already failed. `busy_s` sums
  the time spent inside `consume`. The labeling actor encodes finished views this way.

Both pay off when the other side releases the GIL (torch ops, zlib / zstd, PIL decoding).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator

_END = object()


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


class BackgroundIterator:
    """Iterate `source` in a daemon thread, up to `depth` items ahead (see the module doc)."""

    def __init__(self, source: Iterator[Any], depth: int = 2, name: str = "prefetch"):
        if depth < 1:
            raise ValueError(f"BackgroundIterator: depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[Any]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(_Raised(exc))

    def __iter__(self) -> "BackgroundIterator":
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _END or isinstance(item, _Raised):
            self._finished = True
            if item is _END:
                raise StopIteration
            raise item.exc
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class BackgroundConsumer:
    """Feed items to `consume` on its own thread; use as a context (see the module doc)."""

    def __init__(self, consume: Callable[[Any], None], maxsize: int = 16, name: str = "consumer") -> None:
        self.consume = consume
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.busy_s = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)

    def _run(self) -> None:
        while (item := self.queue.get()) is not _END:
            if self.error is not None:
                continue  # keep draining so that put() never blocks forever
            start = time.perf_counter()
            try:
                self.consume(item)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                self.error = err
            self.busy_s += time.perf_counter() - start

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def __enter__(self) -> "BackgroundConsumer":
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.queue.put(_END)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error
        return False
