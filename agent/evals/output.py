"""Capture what an eval writes to stdout and stderr, in order, without catching anyone else's.

``sys.stdout``/``sys.stderr`` are process-wide and the app's other threads keep printing, so
while any eval runs they are wrapped in a router that sends the evaluating thread's writes
(or an asyncio task's, for code awaited on the app's loop) to that eval's buffer and
everyone else's to the real stream; the last eval out restores the streams.

The text an eval printed is masked by content (``secret_values.mask_text``: URL passwords,
secret-named ``name=value`` parameters) when the answer is built, after consecutive writes
are joined, so a secret printed in pieces is masked too; echoed values are masked by the
renderer like every repr, and an eval's traceback by ``evaluate`` (its exception lines).
The broker stores and shows the masked answer, so transcripts and view-only readers never
see more.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TextIO

from debugbroker.agent.reprs.secret_names import SecretNames
from debugbroker.agent.reprs.secret_values import mask_text
from debugbroker.protocol import EvalResult, OutputChunk

__all__ = ["ChunkBuffer", "captured_output", "routed_to", "MAX_OUTPUT"]

MAX_OUTPUT = 1024 * 1024  # characters of captured output per eval
MAX_CHUNKS = 1_000  # echoed values and stream switches per eval


class ChunkBuffer:
    """An eval's output: stdout/stderr text and echoed values in order, bounded."""

    def __init__(self, secret: SecretNames | None = None) -> None:
        self.secret = secret  # set: printed text is masked by content
        self._lock = threading.Lock()
        self._chunks: list[OutputChunk] = []
        self._size = 0
        self.dropped = 0

    def write(self, stream: str, text: str) -> int:
        """Append ``text`` written to ``stream`` (merged with the previous chunk if same)."""
        with self._lock:
            room = MAX_OUTPUT - self._size
            if len(text) > room or (len(self._chunks) >= MAX_CHUNKS and not self._same(stream)):
                kept = text[: max(0, room)] if len(self._chunks) < MAX_CHUNKS else ""
                self.dropped += len(text) - len(kept)
                text = kept
            if text:
                self._size += len(text)
                if self._same(stream):
                    last = self._chunks[-1]
                    self._chunks[-1] = OutputChunk(stream=stream, text=last.text + text)
                else:
                    self._chunks.append(OutputChunk(stream=stream, text=text))
        return len(text)

    def _same(self, stream: str) -> bool:
        return bool(self._chunks) and self._chunks[-1].stream == stream

    def add(self, chunk: OutputChunk) -> None:
        """Append an echoed value."""
        with self._lock:
            if len(self._chunks) < MAX_CHUNKS:
                self._chunks.append(chunk)
            else:
                self.dropped += 1

    def result(self, request_id: str, *, ok: bool, error: str | None = None) -> EvalResult:
        """The answer to eval ``request_id``: ``output`` text, ``result`` (the last echo) and
        ``chunks``."""
        with self._lock:
            chunks = list(self._chunks)
        if self.dropped:
            note = f"\n[{self.dropped} more characters of output cut]\n"
            chunks.append(OutputChunk(stream="stderr", text=note))
        if self.secret is not None:
            secret = self.secret
            chunks = [
                chunk if chunk.stream == "result" else _masked_chunk(chunk, secret)
                for chunk in chunks
            ]
        output = "".join(chunk.text for chunk in chunks if chunk.stream != "result")
        echoed = [chunk.value for chunk in chunks if chunk.stream == "result"]
        return EvalResult(
            request_id=request_id,
            ok=ok,
            output=output,
            result=echoed[-1] if echoed else None,
            error=error,
            chunks=tuple(chunks),
        )


def _masked_chunk(chunk: OutputChunk, secret: SecretNames) -> OutputChunk:
    text = mask_text(chunk.text, secret)
    return chunk if text is chunk.text else OutputChunk(stream=chunk.stream, text=text)


class _Router:
    """Stands in for a standard stream: evaluating threads and tasks write to their buffers."""

    def __init__(self, name: str, original: TextIO) -> None:
        self.name = name
        self.original = original

    def _buffer(self) -> ChunkBuffer | None:
        buffer = _thread_buffers.get(threading.get_ident())
        if buffer is None and _task_buffers:
            try:
                task = asyncio.current_task()
            except RuntimeError:  # no loop running in this thread
                return None
            buffer = _task_buffers.get(task) if task is not None else None
        return buffer

    def write(self, text: str) -> int:
        buffer = self._buffer()
        if buffer is not None:
            return buffer.write(self.name, str(text))
        return self.original.write(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._buffer() is None:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_lock = threading.Lock()
_routers: dict[str, _Router] = {}
_thread_buffers: dict[int, ChunkBuffer] = {}
_task_buffers: dict[object, ChunkBuffer] = {}
_users = 0


def _install() -> None:
    global _users
    for name in ("stdout", "stderr"):
        router = _routers.get(name)
        stream = getattr(sys, name)
        if router is None or stream is not router:
            if router is None or stream is not router.original:  # (else: the last eval's)
                router = _routers[name] = _Router(name, stream)
            setattr(sys, name, router)
    _users += 1


def _uninstall() -> None:
    global _users
    _users -= 1
    if _users == 0:  # the routers are kept for the next eval while the streams stay the same
        for name in ("stdout", "stderr"):
            router = _routers.get(name)
            if router is not None and getattr(sys, name) is router:
                setattr(sys, name, router.original)


class _Captured:
    """``captured_output``'s context manager (a plain object: no generator per eval)."""

    __slots__ = ("buffer", "ident")

    def __init__(self, buffer: ChunkBuffer) -> None:
        self.buffer = buffer
        self.ident = 0

    def __enter__(self) -> None:
        self.ident = threading.get_ident()
        with _lock:
            _install()
            _thread_buffers[self.ident] = self.buffer

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            _thread_buffers.pop(self.ident, None)
            _uninstall()


def captured_output(buffer: ChunkBuffer) -> AbstractContextManager[None]:
    """Route this thread's stdout/stderr writes to ``buffer`` while the block runs."""
    return _Captured(buffer)


@contextmanager
def routed_to(buffer: ChunkBuffer) -> Iterator[None]:
    """Route the current asyncio task's stdout/stderr writes to ``buffer`` (on any thread)."""
    task = asyncio.current_task()
    with _lock:
        _install()
        _task_buffers[task] = buffer
    try:
        yield
    finally:
        with _lock:
            _task_buffers.pop(task, None)
            _uninstall()
