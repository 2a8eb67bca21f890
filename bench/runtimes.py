"""Container runtime benchmarks: berth against runc and crun (and youki
when it is on PATH), every runtime on the same busybox bundles, measured
interleaved in the same run."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import timing
from report import Row, Target

MIB = 1 << 20
# Containers started one after another, created in parallel, kept in one root.
SEQUENTIAL_COUNT = 100
PARALLEL_COUNT = 20
# Where the memory-limit search starts (must succeed) and its resolution.
MEMORY_SEARCH_HIGH = 64 * MIB
MEMORY_SEARCH_STEP = 64 << 10
SHIM_WORKERS = 2


@dataclass(frozen=True)
class Runtime:
    name: str
    path: str
    root: str

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]


@dataclass(frozen=True)
class Bundles:
    """The bundles every runtime shares; they differ only in config.json."""

    true: str
    sleep: str
    seccomp: str
    # /bin/true without a network namespace: tearing one down is the
    # slowest part of a container's life, and `list`/`state` never see it.
    crowd: str
    workdir: Path

    def with_memory_limit(self, limit: int, name: str) -> str:
        return _write_bundle(
            self.workdir / "bundles" / name,
            _read_config(self.true),
            lambda c: c["linux"].setdefault("resources", {}).__setitem__("memory", {"limit": limit}),
        )


# ---------------------------------------------------------------------------
# Bundle preparation
# ---------------------------------------------------------------------------

def make_busybox_rootfs(rootfs: Path, busybox: str) -> None:
    for sub in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    applets = timing.run_capture([busybox, "--list"]).split()
    for applet in applets:
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")


def _read_config(bundle: str) -> dict:
    with open(Path(bundle) / "config.json") as f:
        return json.load(f)


def _write_bundle(bundle: Path, base: dict, edit: Callable[[dict], None]) -> str:
    config = copy.deepcopy(base)
    edit(config)
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return str(bundle)


def docker_seccomp_profile(client_specs: Path) -> dict:
    """Docker's default profile as dockerd hands it to the runtime."""
    with open(client_specs / "docker-run.json") as f:
        profile = json.load(f)["linux"].get("seccomp")
    if not profile or not profile.get("syscalls"):
        raise ValueError(f"{client_specs}/docker-run.json carries no seccomp profile")
    return profile


def prepare_bundles(workdir: Path, spec_tool: str, busybox: str, client_specs: Path) -> Bundles:
    """One busybox rootfs, and runc's default spec (`runc spec`) for all."""
    rootfs = workdir / "rootfs"
    make_busybox_rootfs(rootfs, busybox)
    spec_dir = workdir / "spec"
    spec_dir.mkdir()
    subprocess.run([spec_tool, "spec"], cwd=spec_dir, check=True, capture_output=True)
    base = json.loads((spec_dir / "config.json").read_text())
    base["root"] = {"path": str(rootfs), "readonly": True}
    base["process"]["terminal"] = False
    bundles = workdir / "bundles"

    def args(argv: list[str]) -> Callable[[dict], None]:
        return lambda c: c["process"].__setitem__("args", argv)

    seccomp = docker_seccomp_profile(client_specs)

    def with_seccomp(c: dict) -> None:
        c["process"]["args"] = ["/bin/true"]
        c["linux"]["seccomp"] = seccomp

    def without_network(c: dict) -> None:
        c["process"]["args"] = ["/bin/true"]
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "network"]

    return Bundles(
        true=_write_bundle(bundles / "true", base, args(["/bin/true"])),
        sleep=_write_bundle(bundles / "sleep", base, args(["/bin/sleep", "1000000"])),
        seccomp=_write_bundle(bundles / "seccomp", base, with_seccomp),
        crowd=_write_bundle(bundles / "crowd", base, without_network),
        workdir=workdir,
    )


# ---------------------------------------------------------------------------
# Container operations shared by the benchmarks
# ---------------------------------------------------------------------------

class Ids:
    """Unique container ids for this run."""

    def __init__(self) -> None:
        self._prefix = f"bench{os.getpid()}-"
        self._n = 0

    def next(self, tag: str) -> str:
        self._n += 1
        return f"{self._prefix}{tag}{self._n}"


def force_delete(rt: Runtime, cid: str) -> None:
    """Best-effort removal after a failure or at teardown."""
    timing.run(rt.cmd("delete", "--force", cid), check=False)


def remove_all(rt: Runtime) -> None:
    """Delete every container left in this runtime's root (teardown)."""
    state_root = Path(rt.root)
    if not state_root.is_dir():
        return
    for entry in state_root.iterdir():
        if entry.is_dir():
            force_delete(rt, entry.name)
    timing.reap_orphans()


def create_start(rt: Runtime, bundle: str, cid: str, pid_file: Path) -> int:
    timing.run(rt.cmd("create", "--bundle", bundle, "--pid-file", str(pid_file), cid))
    timing.run(rt.cmd("start", cid))
    return int(pid_file.read_text().strip())


def shim_cycle(rt: Runtime, bundle: str, cid: str, pid_file: Path) -> None:
    """create, start, wait for the process (as a subreaper shim), delete."""
    try:
        pid = create_start(rt, bundle, cid, pid_file)
        timing.wait_pid_exit(pid)
        timing.run(rt.cmd("delete", cid))
    except Exception:
        force_delete(rt, cid)
        raise


def run_container(rt: Runtime, bundle: str, cid: str) -> None:
    try:
        timing.run(rt.cmd("run", "--bundle", bundle, cid))
    except Exception:
        force_delete(rt, cid)
        raise


# ---------------------------------------------------------------------------
# Benchmarks. Each returns a Row with per-runtime Summary or error text.
# ---------------------------------------------------------------------------

@dataclass
class Context:
    runtimes: list[Runtime]
    bundles: Bundles
    ids: Ids
    runs: int
    warmup: int
    batch_runs: int
    root_size: int

    @property
    def names(self) -> list[str]:
        return [rt.name for rt in self.runtimes]

    def by_name(self, name: str) -> Runtime:
        return next(rt for rt in self.runtimes if rt.name == name)


def _timed(action: Callable[[], None]) -> int:
    start = time.perf_counter_ns()
    action()
    return time.perf_counter_ns() - start


def _measure_row(ctx: Context, row: Row, runs: int, warmup: int, once: Callable[[Runtime, int], float]) -> Row:
    samples, errors = timing.interleaved(ctx.names, runs, warmup, lambda name, i: once(ctx.by_name(name), i))
    row.fill(samples, errors)
    return row


def bench_run_true(ctx: Context) -> Row:
    row = Row("run_true", "`run` of /bin/true (create+start+wait+delete)", "ms", 1e6,
              Target("berth", "crun", 0.9, "at most 0.9x crun"))
    return _measure_row(ctx, row, ctx.runs, ctx.warmup,
                        lambda rt, i: _timed(lambda: run_container(rt, ctx.bundles.true, ctx.ids.next("run"))))


def bench_shim_cycle(ctx: Context) -> Row:
    row = Row("cycle", "create → start → wait → delete, three commands (shim-style)", "ms", 1e6,
              Target("berth", "crun", 0.9, "at most 0.9x crun"))
    pid_file = ctx.bundles.workdir / "cycle.pid"
    return _measure_row(ctx, row, ctx.runs, ctx.warmup,
                        lambda rt, i: _timed(lambda: shim_cycle(rt, ctx.bundles.true, ctx.ids.next("cyc"), pid_file)))


def bench_seccomp_run(ctx: Context) -> Row:
    row = Row("run_seccomp", "`run` of /bin/true with Docker's default seccomp profile", "ms", 1e6)
    return _measure_row(ctx, row, ctx.runs, ctx.warmup,
                        lambda rt, i: _timed(lambda: run_container(rt, ctx.bundles.seccomp, ctx.ids.next("sec"))))


def bench_exec(ctx: Context) -> Row:
    row = Row("exec_true", "`exec` of /bin/true into a running container", "ms", 1e6)
    running: dict[str, str] = {}
    pid_file = ctx.bundles.workdir / "exec.pid"
    setup_errors: dict[str, str] = {}
    for rt in ctx.runtimes:
        cid = ctx.ids.next("exec")
        try:
            create_start(rt, ctx.bundles.sleep, cid, pid_file)
            running[rt.name] = cid
        except timing.CommandFailed as err:
            force_delete(rt, cid)
            setup_errors[rt.name] = f"setup: {err}"
    try:
        measurable = [rt for rt in ctx.runtimes if rt.name in running]
        samples, errors = timing.interleaved(
            [rt.name for rt in measurable], ctx.runs, ctx.warmup,
            lambda name, i: timing.timed(ctx.by_name(name).cmd("exec", running[name], "/bin/true")))
    finally:
        for name, cid in running.items():
            force_delete(ctx.by_name(name), cid)
        timing.reap_orphans()
    row.fill(samples, {**errors, **setup_errors})
    return row


def _sequential_batch(ctx: Context, rt: Runtime) -> int:
    return _timed(lambda: [run_container(rt, ctx.bundles.true, ctx.ids.next("seq")) for _ in range(SEQUENTIAL_COUNT)])


def bench_sequential(ctx: Context) -> Row:
    row = Row("seq100", f"{SEQUENTIAL_COUNT} containers `run` one after another (total)", "ms", 1e6)
    return _measure_row(ctx, row, ctx.batch_runs, 1, lambda rt, i: _sequential_batch(ctx, rt))


def _parallel_create(ctx: Context, rt: Runtime) -> int:
    ids = [ctx.ids.next("par") for _ in range(PARALLEL_COUNT)]
    start = time.perf_counter_ns()
    children = [timing.spawn(rt.cmd("create", "--bundle", ctx.bundles.sleep, cid)) for cid in ids]
    failures = []
    for child in children:
        try:
            timing.finish(child)
        except timing.CommandFailed as err:
            failures.append(err)
    elapsed = time.perf_counter_ns() - start
    for cid in ids:
        force_delete(rt, cid)
    timing.reap_orphans()
    if failures:
        raise failures[0]
    return elapsed


def bench_parallel_create(ctx: Context) -> Row:
    row = Row("parallel20", f"{PARALLEL_COUNT} containers `create`d in parallel (all done)", "ms", 1e6)
    return _measure_row(ctx, row, ctx.batch_runs, 1, lambda rt, i: _parallel_create(ctx, rt))


def _populate(rt: Runtime, ctx: Context, count: int) -> list[str]:
    """`count` stopped containers (/bin/true started detached, exited) in
    a root of their own, made two at a time."""
    crowded = Runtime(rt.name, rt.path, rt.root + "-crowd")
    ids = [ctx.ids.next("crowd") for _ in range(count)]

    def make(cid: str) -> None:
        # `run --detach` is create+start in one process: half the setup time.
        timing.run(crowded.cmd("run", "--detach", "--bundle", ctx.bundles.crowd, cid))

    with ThreadPoolExecutor(SHIM_WORKERS) as pool:
        list(pool.map(make, ids))
    return ids


def _depopulate(rt: Runtime, ids: list[str]) -> None:
    crowded = Runtime(rt.name, rt.path, rt.root + "-crowd")
    with ThreadPoolExecutor(SHIM_WORKERS) as pool:
        list(pool.map(lambda cid: force_delete(crowded, cid), ids))
    timing.reap_orphans()


def bench_crowded_root(ctx: Context) -> list[Row]:
    """`list` and `state` with `root_size` containers in the root."""
    n = ctx.root_size
    list_row = Row("list_crowded", f"`list` with {n} (stopped) containers in the root", "ms", 1e6)
    state_row = Row("state_crowded", f"`state` of one container among {n}", "ms", 1e6)
    populated: dict[str, list[str]] = {}
    setup_errors: dict[str, str] = {}
    try:
        for rt in ctx.runtimes:
            try:
                populated[rt.name] = _populate(rt, ctx, n)
            except timing.CommandFailed as err:
                setup_errors[rt.name] = f"setup: {err}"
            timing.reap_orphans()
        names = [name for name in ctx.names if name in populated]

        def crowd_cmd(name: str, *args: str) -> list[str]:
            rt = ctx.by_name(name)
            return Runtime(rt.name, rt.path, rt.root + "-crowd").cmd(*args)

        samples, errors = timing.interleaved(names, ctx.runs, ctx.warmup,
                                             lambda name, i: timing.timed(crowd_cmd(name, "list")))
        list_row.fill(samples, {**errors, **setup_errors})
        samples, errors = timing.interleaved(
            names, ctx.runs, ctx.warmup,
            lambda name, i: timing.timed(crowd_cmd(name, "state", populated[name][i % n])))
        state_row.fill(samples, {**errors, **setup_errors})
    finally:
        for rt in ctx.runtimes:
            crowded = Runtime(rt.name, rt.path, rt.root + "-crowd")
            remove_all(crowded)
    return [list_row, state_row]


def _peak_rss_kib(ctx: Context, rt: Runtime) -> int:
    """Maximum resident set of the runtime during `run` as /usr/bin/time
    reports it (its wait4 rusage: the runtime and the children it waits for)."""
    out = ctx.bundles.workdir / "rss.txt"
    cid = ctx.ids.next("rss")
    try:
        timing.run(["/usr/bin/time", "-f", "%M", "-o", str(out), *rt.cmd("run", "--bundle", ctx.bundles.true, cid)])
    except Exception:
        force_delete(rt, cid)
        raise
    return int(out.read_text().split()[-1])


def bench_peak_rss(ctx: Context) -> Row:
    row = Row("peak_rss", "peak RSS during `run` (/usr/bin/time)", "MiB", 1024,
              Target("berth", "crun", 1.0, "at most crun's"))
    return _measure_row(ctx, row, ctx.runs, 1, lambda rt, i: _peak_rss_kib(ctx, rt))


# ---------------------------------------------------------------------------
# The smallest memory limit under which a container still starts
# ---------------------------------------------------------------------------

def _memory_cgroup_limit(pid: int) -> int | None:
    """The v1 memory limit of the cgroup `pid` is in, or None if unknown."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            limit_file = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"
            return int(limit_file.read_text()) if limit_file.exists() else None
    return None


def memory_limit_applied(ctx: Context, rt: Runtime) -> bool:
    """Does this runtime put its container under linux.resources.memory.limit?"""
    config = _read_config(ctx.bundles.sleep)
    config["linux"]["resources"] = {"memory": {"limit": MEMORY_SEARCH_HIGH}}
    bundle = _write_bundle(ctx.bundles.workdir / "bundles" / f"memcheck-{rt.name}", config, lambda c: None)
    cid = ctx.ids.next("memchk")
    try:
        pid = create_start(rt, bundle, cid, ctx.bundles.workdir / "memcheck.pid")
        return _memory_cgroup_limit(pid) == MEMORY_SEARCH_HIGH
    except timing.CommandFailed:
        return False
    finally:
        force_delete(rt, cid)
        timing.reap_orphans()


def _starts_under(ctx: Context, rt: Runtime, limit: int) -> bool:
    bundle = ctx.bundles.with_memory_limit(limit, f"mem-{rt.name}")
    try:
        run_container(rt, bundle, ctx.ids.next("mem"))
        return True
    except timing.CommandFailed:
        return False
    finally:
        timing.reap_orphans()


def smallest_memory_limit(ctx: Context, rt: Runtime) -> int:
    """Binary search for the smallest limit (to MEMORY_SEARCH_STEP) under
    which `run` of /bin/true succeeds; each candidate is tried twice so one
    unlucky run does not move the answer."""
    if not _starts_under(ctx, rt, MEMORY_SEARCH_HIGH):
        raise RuntimeError(f"does not start even under {MEMORY_SEARCH_HIGH // MIB} MiB")
    low, high = 0, MEMORY_SEARCH_HIGH  # low fails (by definition), high starts
    while high - low > MEMORY_SEARCH_STEP:
        mid = (low + high) // 2 // MEMORY_SEARCH_STEP * MEMORY_SEARCH_STEP
        if mid in (low, high):
            break
        if _starts_under(ctx, rt, mid) or _starts_under(ctx, rt, mid):
            high = mid
        else:
            low = mid
    return high


def bench_memory_floor(ctx: Context) -> Row:
    row = Row("memory_floor", "smallest memory.limit a container starts under", "MiB", MIB,
              Target("berth", None, 2 * MIB, "a container starts under 2 MiB"))
    results: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for rt in ctx.runtimes:
        if not memory_limit_applied(ctx, rt):
            errors[rt.name] = "n/a (memory limit not applied by this runtime here)"
            continue
        try:
            results[rt.name] = [smallest_memory_limit(ctx, rt)]
        except RuntimeError as err:
            errors[rt.name] = str(err)
    row.fill(results, errors)
    return row


# ---------------------------------------------------------------------------
# Binary size
# ---------------------------------------------------------------------------

def stripped_size(binary: str, scratch: Path) -> int:
    copy_path = scratch / (Path(binary).name + ".stripped")
    shutil.copy2(binary, copy_path)
    try:
        timing.run(["/usr/bin/strip", str(copy_path)])
        return copy_path.stat().st_size
    finally:
        copy_path.unlink()


def linkage(binary: str) -> str:
    out = timing.run_capture(["/usr/bin/file", "-L", binary])
    return "static" if "statically linked" in out or "static-pie" in out else "dynamic"


def bench_binary_size(ctx: Context) -> Row:
    row = Row("binary_size", "stripped binary size", "MiB", MIB,
              Target("berth", None, 3 * MIB, "under 3 MiB"))
    sizes = {rt.name: [stripped_size(rt.path, ctx.bundles.workdir)] for rt in ctx.runtimes}
    row.fill(sizes, {})
    row.notes = {rt.name: linkage(rt.path) for rt in ctx.runtimes}
    return row
