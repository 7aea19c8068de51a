"""The continuous-batching engine in a process of its own, behind engine.py's interface (submit / RequestHandle /
events / stats), for `chatforge serve`.

Why: in one process the engine thread and the HTTP server share one GIL. The engine's step is a few hundred small
torch operations, each of which lets go of the GIL and has to take it back; whenever the event loop, the threadpool
or the request-log writer held it (or held it while the OS had them off the CPU), the step waited. Measured on the
2-core build machine, 32 streaming clients, 1 torch thread: the engine thread was on the CPU ~1.5 s of a ~2.4 s run
and stalled most of the rest (decode steps of ~24 ms against ~15 ms in-process; ~930 tokens/s against ~1450). In its
own process the engine only waits for a CPU.

How: the child process loads the model and runs engine.Engine. The server sends it requests and cancellations down a
pipe; after each decode step the engine thread sends back, in one message, every event its requests got in that step
(a Waker whose "loop" is the pipe: the hand-over engine.wake_all makes once per step), with the engine's stats. A
reader thread in the server feeds those events to this process's RequestHandles and wakes their consumers, again
once per step. If the child dies, every open request fails with an error and new ones are refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from chatforge.serve.engine import (
    Completion,
    Finished,
    GenerationRequest,
    QueueFull,
    RequestHandle,
    Waker,
    check_request,
    wake_all,
)

log = logging.getLogger(__name__)
START_TIMEOUT_S = 300  # importing torch and loading the model in the child


class ProcessEngine:
    """engine.Engine running in a child process (started at once; start() waits until it has loaded the model)."""

    def __init__(self, model_path: str, model, tokenizer, max_batch_size: int = 32, max_queue: int = 256,
                 device: str | None = None, threads: int | None = None):
        """threads: the engine process's torch threads (None: engine_threads())."""
        from chatforge.models.generate import stop_ids

        self.max_batch_size, self.max_queue = max_batch_size, max_queue
        self.max_context: int = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self.vocab_size = model.get_input_embeddings().num_embeddings
        self.default_stop = stop_ids(model, tokenizer)
        self._handles: dict[int, RemoteHandle] = {}  # submitted and not finished
        self._ids = itertools.count()
        self._lock = threading.Lock()  # _handles, _closed, _dead, _stats
        self._send_lock = threading.Lock()  # the pipe's sending end (the reader never waits for it: no deadlock)
        self._closed = self._dead = False
        self._stats: dict = {}
        self._latency = 1.0
        self._ready = threading.Event()
        self._error: str | None = None
        # a fresh interpreter (never a fork of one that has started torch's threads; and not multiprocessing's
        # spawn, which re-runs the server's __main__ in the child), talking over a socket pair
        mine, theirs = socket.socketpair()
        self.threads = threads or engine_threads()
        args = json.dumps({"fd": theirs.fileno(), "model": model_path, "device": device,
                           "max_batch_size": max_batch_size, "threads": self.threads})
        here = str(Path(__file__).resolve().parents[2])  # the child imports this chatforge, installed or not
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "chatforge.serve.engine_process", args],
                                      pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        self._conn = Connection(mine.detach())
        self._reader = threading.Thread(target=self._read, name="chatforge-engine-reader", daemon=True)
        self._reader.start()

    # ---- the engine interface ----
    def start(self) -> ProcessEngine:
        if not self._ready.wait(START_TIMEOUT_S) or self._error or self._dead:
            self.shutdown()
            why = self._error or ("it exited" if self._proc.poll() is not None else "timed out")
            raise RuntimeError(f"the engine process did not start: {why}")
        return self

    def submit(self, request: GenerationRequest) -> RequestHandle:
        check_request(request, self.max_context, self.vocab_size)
        stop = set(request.stop_token_ids or self.default_stop)
        limit = min(request.max_new_tokens, self.max_context - len(request.prompt_ids))
        with self._lock:
            if self._closed or self._dead:
                raise RuntimeError("the engine is shut down")
            waiting = len(self._handles) - self.max_batch_size  # the child admits whenever a slot is free
            if waiting >= self.max_queue:
                raise QueueFull(round(max(0.1, self._latency * waiting / self.max_batch_size), 1))
            handle = RemoteHandle(self, request, stop, limit, next(self._ids))
            self._handles[handle.rid] = handle
        # with the seed drawn here for an unseeded request: the same draws from torch's generator as in-process
        if not self._send(("submit", handle.rid, dataclasses.replace(request, seed=handle.seed))):
            with self._lock:
                self._handles.pop(handle.rid, None)
            raise RuntimeError("the engine is shut down")
        return handle

    def stats(self) -> dict:
        with self._lock:
            stats = dict(self._stats)
        return stats | {"max_batch_size": self.max_batch_size, "max_queue": self.max_queue, "threads": self.threads}

    def shutdown(self, timeout: float | None = 30) -> None:
        with self._lock:
            closing, self._closed = not self._closed, True
        if closing:
            self._send(("shutdown",))
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._reader.join(timeout)
        self._conn.close()
        self._fail_all("engine shut down")

    def _wake(self) -> None:  # RequestHandle.cancel's call; cancellations go through _cancel
        pass

    def _cancel(self, handle: RemoteHandle) -> None:
        with self._lock:
            running = handle.rid in self._handles and not self._dead
        if running:
            self._send(("cancel", handle.rid))

    def _send(self, msg) -> bool:
        """False if the engine process is gone."""
        with self._send_lock:
            try:
                self._conn.send(msg)
                return True
            except OSError:
                return False

    # ---- the reader thread ----
    def _read(self) -> None:
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "events":
                    self._deliver(msg[1], msg[2])
                elif msg[0] == "ready":
                    self._stats = msg[1]
                    self._ready.set()
                elif msg[0] == "error":  # the child could not start
                    self._error = msg[1]
                    self._ready.set()
        except (EOFError, OSError):
            pass
        except Exception:  # noqa: BLE001 - whatever breaks here, the clients must hear of it
            log.exception("engine reader failed")
        with self._lock:
            self._dead = True
            if not self._closed:
                log.error("the engine process stopped (exit code %s): failing its requests", self._proc.poll())
        self._ready.set()
        self._fail_all("the engine process stopped")

    def _deliver(self, batch: list, stats: dict) -> None:
        wake: list[Waker] = []
        with self._lock:
            self._stats = stats
            handles = [(self._handles.get(rid), events, completion) for rid, events, completion in batch]
            for h, events, completion in handles:
                if h is not None and completion is not None:
                    del self._handles[h.rid]
        for h, events, completion in handles:
            if h is None:
                continue
            for event in events:
                if isinstance(event, Finished):
                    h.first_token_time = event.first_token_time
                    self._latency = 0.9 * self._latency + 0.1 * (event.finish_time - event.submit_time)
                    h._emit(event, completion, wake)
                else:
                    h._emit(event, None, wake)
        wake_all(wake)

    def _fail_all(self, error: str) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for h in handles:
            now = time.monotonic()
            done = Finished("error", len(h.request.prompt_ids), 0, None, now, h.submit_time, error)
            h._emit(done, Completion("", [], "error", {}, done))


def engine_threads() -> int:
    """The engine process's torch threads by default: this process's count (OMP_NUM_THREADS, else the cores), but
    one core is left to the HTTP side. On the 2-core build machine, 32 streaming clients, an engine with both cores
    stalled at every parallel region whose second thread the event loop or the clients had preempted: about a fifth
    fewer tokens/s than with one thread, and with another process busy on the machine, under 50 tokens/s while its
    threads spun a whole core."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch.get_num_threads(), cores - 1))


class RemoteHandle(RequestHandle):
    """A request running in the engine process: its events arrive through ProcessEngine's reader thread."""

    def __init__(self, engine: ProcessEngine, request: GenerationRequest, stop: set[int], limit: int, rid: int):
        super().__init__(engine, request, stop, limit)
        self.rid = rid

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._engine._cancel(self)


# ---- the child process ----

@dataclasses.dataclass(eq=False)
class _Mark:
    """What the engine thread "wakes" for a request in the child: how many of its events went to the server."""
    rid: int
    handle: RequestHandle
    sent: int = 0

    def is_set(self) -> bool:
        return False


class _Pipe:
    """Stands in for an event loop in engine.wake_all: the engine thread hands over a step's events once, and they
    go to the server in one message, with the engine's stats."""

    def __init__(self, conn, engine):
        self.conn, self.engine, self.lock = conn, engine, threading.Lock()

    def call_soon_threadsafe(self, _callback, marks: list[_Mark]) -> None:
        with self.lock:  # the engine thread, and the main thread for a request's first events (see child_main)
            batch = []
            for m in dict.fromkeys(marks):  # a request that got a token and finished in one step is marked twice
                with m.handle._cond:
                    events, completion = m.handle._events[m.sent:], m.handle.completion
                m.sent += len(events)
                if events:
                    batch.append((m.rid, events, completion if isinstance(events[-1], Finished) else None))
            if batch:
                self.conn.send(("events", batch, self.engine.stats()))

    def send(self, msg) -> None:
        with self.lock:
            self.conn.send(msg)


def child_main(conn, model_path: str, device: str | None, max_batch_size: int, threads: int) -> None:
    """The engine process: load the model, then take requests from the pipe until told to stop (or the server is
    gone: the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server shuts this down
    try:
        import torch

        from chatforge.models.loading import load_model
        from chatforge.serve.engine import Engine

        torch.set_num_threads(threads)

        model, tokenizer = load_model(model_path, device)
        engine = Engine(model, tokenizer, max_batch_size=max_batch_size, max_queue=1 << 30).start()
    except Exception as e:  # noqa: BLE001 - the server reports it
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    pipe, handles = _Pipe(conn, engine), {}
    pipe.send(("ready", engine.stats()))
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "submit":
                _, rid, request = msg
                try:
                    h = engine.submit(request)
                except Exception as e:  # noqa: BLE001 - checked in the server already; fail this request alone
                    conn_error(pipe, rid, request, e)
                    continue
                mark = _Mark(rid, h)
                with h._cond:
                    h._wakers.append(Waker(pipe, mark))
                    early = bool(h._events)
                if early:  # the engine ran it before its waker was in place: send what it missed
                    pipe.call_soon_threadsafe(None, [mark])
                handles[rid] = h
            elif msg[0] == "cancel":
                h = handles.pop(msg[1], None)
                if h is not None:
                    h.cancel()
            elif msg[0] == "shutdown":
                break
            for rid in [rid for rid, h in handles.items() if h.completion is not None]:
                del handles[rid]
    except (EOFError, OSError):  # the server is gone
        pass
    finally:
        engine.shutdown()


def conn_error(pipe: _Pipe, rid: int, request: GenerationRequest, error: Exception) -> None:
    now = time.monotonic()
    done = Finished("error", len(request.prompt_ids), 0, None, now, now, f"{type(error).__name__}: {error}")
    pipe.send(("events", [(rid, [done], Completion("", [], "error", {}, done))], pipe.engine.stats()))


__all__ = ["ProcessEngine"]


if __name__ == "__main__":  # the child: python -m chatforge.serve.engine_process '{"fd": ..., "model": ...}'
    opts = json.loads(sys.argv[1])
    child_main(Connection(opts["fd"]), opts["model"], opts["device"], opts["max_batch_size"], opts["threads"])
