"""Jobs in worker processes that stop when told to: the experiment runner's pool.

:func:`run_in_processes` runs ``target(*job)`` for every job on at most ``workers`` processes (started
by ``spawn``: no threads or CUDA state copied from the parent), each running one job at a time. Each
result reaches the parent as soon as its job ends, so the caller can record it at once.

- A job that raises, or whose process dies (killed, out of memory), is reported with its reason; the
  other jobs go on (a new process replaces a dead one).
- Ctrl-C stops everything promptly: the queued jobs are not started, the running ones are ended
  (their processes are terminated), every result that had already arrived is handed over, and
  :class:`PoolInterrupted` (a ``KeyboardInterrupt``) says what was stopped. The workers ignore
  Ctrl-C themselves (a terminal sends it to them too): only the parent decides.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.connection import wait


class PoolInterrupted(KeyboardInterrupt):
    """Ctrl-C in the parent: ``stopped`` (running when it came) and ``cancelled`` (never started)
    are the jobs that did not finish."""

    def __init__(self, stopped: list, cancelled: list):
        super().__init__(f"{len(stopped)} running job(s) stopped, {len(cancelled)} cancelled")
        self.stopped, self.cancelled = stopped, cancelled


def _exit(signum, frame):
    sys.exit(128 + signum)


def _work(conn, target) -> None:
    """A worker process: for each job the parent sends, run it and send back ``("done", result)``
    or ``("failed", reason)``; stop at ``None``. Told to stop (SIGTERM), it exits through Python,
    so that what it holds (locks, files) is cleaned up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit)
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        try:
            message = ("done", target(*job))
        except Exception as exc:
            message = ("failed", f"{type(exc).__name__}: {exc}")
        conn.send(message)


@contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while a worker starts: it inherits that, so it never sees a KeyboardInterrupt,
    even before :func:`_work` runs."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main only
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _why_it_died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return (f"its worker process was killed by signal {-exitcode} "
                f"({signal.Signals(-exitcode).name})")
    return f"its worker process ended (exit code {exitcode}) without a result"


def run_in_processes(target, jobs: list[tuple], workers: int, done, failed) -> None:
    """Run ``target(*job)`` for each job in ``jobs`` on at most ``workers`` processes; call
    ``done(job, result)`` or ``failed(job, reason)`` in this process as each job ends. ``target``
    and the jobs must be picklable (``target`` a module-level function)."""
    context = get_context("spawn")
    queue, pipes, idle, busy = list(jobs), {}, [], {}  # busy: process -> its job

    def start() -> object:
        here, there = context.Pipe()
        process = context.Process(target=_work, args=(there, target), daemon=True)
        with _sigint_ignored():
            process.start()
        there.close()  # the worker holds the other copy: its end closes the pipe
        pipes[process] = here
        return process

    try:
        while queue or busy:
            while queue and len(busy) < workers:
                process = idle.pop() if idle else start()
                try:
                    pipes[process].send(queue[0])
                except OSError:  # an idle worker that died: replace it
                    process.join()
                    del pipes[process]
                    continue
                busy[process] = queue.pop(0)
            ready = set(wait([p.sentinel for p in busy] + [pipes[p] for p in busy]))
            for process, job in list(busy.items()):
                if process.sentinel not in ready and pipes[process] not in ready:
                    continue
                message = _receive(pipes[process])
                del busy[process]
                if message is None:
                    process.join()
                    del pipes[process]
                    failed(job, _why_it_died(process.exitcode))
                    continue
                idle.append(process)
                (done if message[0] == "done" else failed)(job, message[1])
    except KeyboardInterrupt:
        for process, job in list(busy.items()):  # results that made it in time count
            message = _receive(pipes[process])
            if message is not None and message[0] == "done":
                del busy[process]
                idle.append(process)
                done(job, message[1])
        raise PoolInterrupted(list(busy.values()), queue) from None
    finally:
        for process in idle:
            try:
                pipes[process].send(None)
            except OSError:
                pass
        _stop(list(busy), idle)


def _receive(connection):
    """The worker's message, or None when it died without sending one."""
    try:
        return connection.recv() if connection.poll() else None
    except (EOFError, OSError):
        return None


def _stop(running: list, idle: list) -> None:
    """End the running workers now (SIGTERM) and the idle ones when they have read their ``None``."""
    for process in running:
        process.terminate()
    for process in running + idle:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
