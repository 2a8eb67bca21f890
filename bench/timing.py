"""Spawning commands cheaply, timing them, and summarising samples.

Commands are started with posix_spawn (vfork-like, no Python between fork
and exec) and waited for by pid, so the harness adds the same small,
constant cost to every tool it compares.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import select
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

PR_SET_CHILD_SUBREAPER = 36


class CommandFailed(Exception):
    """A measured command exited non-zero (or was killed)."""

    def __init__(self, argv: Sequence[str], status: int, stderr: str) -> None:
        self.argv = list(argv)
        self.status = status
        self.stderr = stderr.strip()
        detail = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        super().__init__(f"`{' '.join(argv)}` {describe_status(status)}: {detail}")


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited {os.waitstatus_to_exitcode(status)}"


def become_subreaper() -> None:
    """Adopt orphans, the way a container shim does: a container started by
    `create` outlives its runtime process and must be waited for by us."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans() -> int:
    """Reap every exited child that nobody waits for. Call only when no
    specific pid is being waited for elsewhere (no threads spawning)."""
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


# Where spawned commands' stderr goes; set by use_scratch_dir() to a
# directory the caller removes (the benchmark's own tmpfs).
_ERR_DIR = tempfile.gettempdir()
# next() on a count is atomic under the GIL: safe from the shim threads.
_SPAWN_SEQ = itertools.count()


def use_scratch_dir(path: str) -> None:
    global _ERR_DIR
    _ERR_DIR = path


@dataclass
class Spawned:
    pid: int
    argv: list[str]
    stderr_path: str


def spawn(argv: Sequence[str], stdout: str = os.devnull) -> Spawned:
    """Start argv[0] (an absolute path) with stdin from /dev/null, stdout
    to `stdout` and stderr to a private file read only on failure."""
    err_path = os.path.join(_ERR_DIR, f"stderr.{next(_SPAWN_SEQ)}")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    pid = os.posix_spawn(argv[0], list(argv), os.environ, file_actions=actions)
    return Spawned(pid, list(argv), err_path)


def finish(child: Spawned, check: bool = True) -> tuple[int, os.struct_rusage]:
    """Wait for `child`; raise CommandFailed when `check` and it failed."""
    _, status, rusage = os.wait4(child.pid, 0)
    try:
        if check and status != 0:
            with open(child.stderr_path, errors="replace") as f:
                raise CommandFailed(child.argv, status, f.read()[-2000:])
    finally:
        os.unlink(child.stderr_path)
    return status, rusage


def run(argv: Sequence[str], check: bool = True, stdout: str = os.devnull) -> int:
    """Run to completion; returns the wait status."""
    status, _ = finish(spawn(argv, stdout), check)
    return status


def run_capture(argv: Sequence[str]) -> str:
    """Run and return stdout (for setup steps, not measurements)."""
    fd, path = tempfile.mkstemp(dir=_ERR_DIR)
    os.close(fd)
    try:
        run(argv, stdout=path)
        with open(path, errors="replace") as f:
            return f.read()
    finally:
        os.unlink(path)


def timed(argv: Sequence[str]) -> int:
    """Wall-clock nanoseconds of one successful run of argv."""
    start = time.perf_counter_ns()
    run(argv)
    return time.perf_counter_ns() - start


def wait_pid_exit(pid: int, timeout_s: float = 30.0) -> None:
    """Wait for a process that may or may not be our child to exit, and
    reap it if it is ours (a shim's view of a container's init)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout_s)
        if not ready:
            raise TimeoutError(f"process {pid} still running after {timeout_s}s")
    finally:
        os.close(pidfd)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def interleaved(
    subjects: Sequence[str], runs: int, warmup: int, once: Callable[[str, int], float]
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Call once(subject, i) for every subject in turn: `warmup` unrecorded
    rounds, then `runs` recorded ones. Interleaving gives every subject the
    same machine conditions (other builds, page cache, thermal state).

    A subject whose call raises is dropped from later rounds; its error is
    returned instead of samples, so one broken tool does not stop the rest.
    """
    samples: dict[str, list[float]] = {s: [] for s in subjects}
    errors: dict[str, str] = {}
    for i in range(warmup + runs):
        live = [s for s in subjects if s not in errors]
        if not live:
            break
        # Rotate the order so no subject always runs right after another.
        shift = i % len(live)
        for subject in live[shift:] + live[:shift]:
            try:
                value = once(subject, i)
            except (CommandFailed, OSError, TimeoutError, ValueError) as err:
                errors[subject] = str(err)
                continue
            if i >= warmup:
                samples[subject].append(value)
    return {s: v for s, v in samples.items() if s not in errors}, errors


@dataclass
class Summary:
    """Median and spread of one set of samples, in the samples' unit."""

    median: float
    p10: float
    p90: float
    n: int
    samples: list[float] = field(repr=False)

    def to_json(self, scale: float = 1.0) -> dict:
        return {
            "median": self.median / scale,
            "p10": self.p10 / scale,
            "p90": self.p90 / scale,
            "n": self.n,
            "samples": [s / scale for s in self.samples],
        }


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("no samples to summarise")
    ordered = sorted(samples)
    if len(ordered) >= 2:
        deciles = statistics.quantiles(ordered, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = ordered[0]
    return Summary(statistics.median(ordered), p10, p90, len(ordered), list(samples))
