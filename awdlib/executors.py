"""Where a study's runs execute: this machine's processes, or a cluster through ``submitit``.

The experiment runner (:func:`awdlib.experiments.run_study`) decides *which* runs are missing and is
the only one that writes the results file; an executor only runs them and reports back. Both kinds
share one method, ``run(target, jobs, done, failed)``: call ``target(*job)`` for every job, and in the
driver's process ``done(job, result)`` or ``failed(job, reason)`` as each one ends. So a study can be
started with one executor and resumed with the other: the results file is the same.

- :class:`LocalExecutor`: ``workers`` processes on this machine, one torch thread each
  (:mod:`awdlib.pool`; ``workers=0`` runs the jobs one after another in this process).
- :class:`SubmititExecutor`: each run a job of its own through the ``submitit`` package (Slurm, or
  its ``"local"`` cluster: a separate process per job on this machine, with the result pickled back
  as on a cluster), at most ``workers`` at a time. ``submitit`` is imported only here.

Ctrl-C in the driver stops both the same way: runs not yet started are not started, running ones are
ended (Slurm jobs cancelled), finished results that arrived are handed over, and
:class:`awdlib.pool.PoolInterrupted` says what was stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

from .checks import check_int, require
from .pool import PoolInterrupted, run_in_processes

EXECUTORS = ("local", "submitit")


class LocalExecutor:
    """``workers`` processes on this machine (:func:`awdlib.pool.run_in_processes`); 0: this
    process, one job after another (no process start-up: smoke runs)."""

    def __init__(self, workers: int = 1):
        check_int("workers", workers, minimum=0)
        self.workers = workers

    def describe(self) -> str:
        return f"{self.workers} worker(s)" if self.workers else "this process"

    def run(self, target, jobs: list[tuple], done, failed) -> None:
        if self.workers:
            run_in_processes(target, jobs, self.workers, done=done, failed=failed)
            return
        for job in jobs:
            try:
                result = target(*job)
            except Exception as exc:  # as a worker process reports it: the others go on
                failed(job, f"{type(exc).__name__}: {exc}")
                continue
            done(job, result)


class SubmititExecutor:
    """Each job submitted through ``submitit.AutoExecutor`` (Slurm where ``sbatch`` exists, else
    submitit's local cluster; ``cluster`` forces one), at most ``workers`` in flight at a time.

    ``folder`` receives submitit's job files and logs (``%j`` is the job id). ``partition``,
    ``gpus_per_node``, ``cpus_per_task`` and ``timeout_min`` are submitit's usual options (the
    partition is Slurm's only). The driver polls the jobs every ``poll_s`` seconds; a job that
    raised, timed out or was cancelled is reported through ``failed`` with the last line of its
    error.
    """

    def __init__(self, folder: str | Path, workers: int = 1, *, cluster: str | None = None,
                 partition: str | None = None, gpus_per_node: int = 0, cpus_per_task: int = 1,
                 timeout_min: int = 24 * 60, poll_s: float = 1.0):
        check_int("workers", workers, minimum=1)
        check_int("gpus_per_node", gpus_per_node, minimum=0)
        check_int("cpus_per_task", cpus_per_task, minimum=1)
        check_int("timeout_min", timeout_min, minimum=1)
        require(cluster in (None, "slurm", "local"), "cluster", cluster,
                "None (submitit chooses), 'slurm' or 'local'")
        self.folder, self.workers, self.cluster = Path(folder), workers, cluster
        self.parameters = dict(timeout_min=timeout_min, gpus_per_node=gpus_per_node,
                               cpus_per_task=cpus_per_task, name="awdlib")
        if partition:
            self.parameters["slurm_partition"] = partition
        self.poll_s = poll_s

    def describe(self) -> str:
        return f"submitit ({self.cluster or 'auto'}), at most {self.workers} job(s) at a time"

    def _executor(self):
        try:
            import submitit
        except ImportError:
            raise ImportError("--executor submitit needs the submitit package: "
                              "pip install submitit") from None
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        executor.update_parameters(**self.parameters)
        return executor

    def run(self, target, jobs: list[tuple], done, failed) -> None:
        executor = self._executor()
        queue, running = list(jobs), {}  # running: submitit job -> our job
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    submitted = executor.submit(target, *queue[0])
                    running[submitted] = queue.pop(0)
                finished = [j for j in running if j.done()]
                if not finished:
                    time.sleep(self.poll_s)
                for submitted in finished:
                    self._report(submitted, running.pop(submitted), done, failed)
        except KeyboardInterrupt:
            stopped = []
            for submitted, job in running.items():
                if submitted.done() and submitted.exception() is None:
                    done(job, submitted.result())
                else:
                    submitted.cancel(check=False)
                    stopped.append(job)
            raise PoolInterrupted(stopped, queue) from None

    @staticmethod
    def _report(submitted, job: tuple, done, failed) -> None:
        error = submitted.exception()
        if error is None:
            done(job, submitted.result())
            return
        failed(job, f"submitit job {submitted.job_id} ({submitted.state}): {_last_error(error)}")


def _last_error(error: Exception) -> str:
    """The line that says what went wrong: a job's traceback ends in it (``ValueError: ...``); a job
    that timed out or was cancelled has none, and its message's first line says so."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if "Traceback (most recent call last):" in lines:
        trace = lines[lines.index("Traceback (most recent call last):"):]
        end = next((i for i, line in enumerate(trace) if set(line) == {"-"}), len(trace))
        return trace[end - 1]
    return lines[0] if lines else type(error).__name__
