"""bale benchmarks: import+unpack vs `umoci unpack`, commit of a one-file
change vs `umoci repack`, pull/push from a local docker-registry vs
`skopeo copy`. Everything runs on the benchmark's own tmpfs."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import imagegen
import timing
from report import Row, Target

TAG = "bench"
# Bump when imagegen's output changes, so stale cached images are not used.
GENERATOR_VERSION = 1
REGISTRY_START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Tools:
    bale: str
    umoci: str
    skopeo: str
    registry: str | None


@dataclass(frozen=True)
class Image:
    layout: Path
    summary: dict


@dataclass
class Context:
    tools: Tools
    image: Image
    workdir: Path
    runs: int
    warmup: int
    seq: int = 0

    def scratch(self, name: str) -> Path:
        """A new path under the workdir that does not exist yet."""
        self.seq += 1
        return self.workdir / f"{name}-{self.seq}"

    def bale(self, store: Path, *args: str) -> list[str]:
        return [self.tools.bale, "--root", str(store), *args]


def image_spec(total_bytes: int, layers: int) -> imagegen.ImageSpec:
    try:
        return imagegen.ImageSpec(total_bytes, layers)
    except ValueError as err:
        raise ValueError(f"BENCH_IMAGE_MB/BENCH_IMAGE_LAYERS: {err}") from None


def cached_image(cache: Path, spec: imagegen.ImageSpec, dest: Path, progress: Callable[[str], None]) -> Image:
    """Generate the image once per machine (it takes a while), keep it under
    target/bench/cache, and copy it onto the benchmark's tmpfs."""
    key = f"image-{spec.total_bytes >> 20}m-{spec.layers}l-s{spec.seed}-v{GENERATOR_VERSION}"
    cached, summary_file = cache / key, cache / f"{key}.json"
    if not summary_file.exists():
        progress(f"bale: generating the {spec.total_bytes >> 20} MB test image (cached for later runs)")
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f"{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(cached, ignore_errors=True)
        summary = imagegen.generate_layout(partial, TAG, spec)
        partial.rename(cached)
        summary_file.write_text(json.dumps(summary))
    timing.run(["/bin/cp", "-a", str(cached), str(dest)])
    return Image(dest, json.loads(summary_file.read_text()))


def _timed(action: Callable[[], None]) -> int:
    start = time.perf_counter_ns()
    action()
    return time.perf_counter_ns() - start


def _remove_tree(path: Path) -> None:
    timing.run(["/bin/rm", "-rf", "--one-file-system", str(path)])


def _delete_bundle(ctx: Context, store: Path, bundle: Path) -> None:
    """bale delete unmounts the overlay; rm catches a plain --copy tree."""
    if bundle.exists():
        timing.run(ctx.bale(store, "delete", str(bundle)), check=False)
        _remove_tree(bundle)


# ---------------------------------------------------------------------------
# import + unpack
# ---------------------------------------------------------------------------

def _bale_import_unpack(ctx: Context, copy: bool) -> int:
    store, bundle = ctx.scratch("store"), ctx.scratch("bundle")
    unpack = ["unpack", "--copy"] if copy else ["unpack"]
    try:
        return _timed(lambda: (timing.run(ctx.bale(store, "import", str(ctx.image.layout), f"{TAG}:1")),
                               timing.run(ctx.bale(store, *unpack, f"{TAG}:1", str(bundle)))))
    finally:
        _delete_bundle(ctx, store, bundle)
        _remove_tree(store)


def _umoci_unpack(ctx: Context) -> int:
    bundle = ctx.scratch("umoci-bundle")
    try:
        return timing.timed([ctx.tools.umoci, "unpack", "--image", f"{ctx.image.layout}:{TAG}", str(bundle)])
    finally:
        _remove_tree(bundle)


def bench_import_unpack(ctx: Context) -> list[Row]:
    mb = round(ctx.image.summary["content_bytes"] / (1 << 20))
    what = f"{mb} MB, {ctx.image.summary['layers']} layers, {ctx.image.summary['files']} files"
    overlay = Row("unpack", f"import + unpack ({what}) vs umoci unpack", "s", 1e9,
                  Target("bale", "umoci", 0.5, "at least 2x faster than umoci"))
    plain = Row("unpack_copy", "import + unpack --copy (plain directory) vs umoci unpack", "s", 1e9,
                Target("bale", "umoci", 0.5, "at least 2x faster than umoci"))
    actions = {"bale": lambda: _bale_import_unpack(ctx, copy=False),
               "bale --copy": lambda: _bale_import_unpack(ctx, copy=True),
               "umoci": lambda: _umoci_unpack(ctx)}
    samples, errors = timing.interleaved(list(actions), ctx.runs, ctx.warmup, lambda name, i: actions[name]())
    umoci = {"umoci": samples["umoci"]} if "umoci" in samples else {}
    umoci_err = {"umoci": errors["umoci"]} if "umoci" in errors else {}
    overlay.fill({**umoci, **({"bale": samples["bale"]} if "bale" in samples else {})},
                 {**umoci_err, **({"bale": errors["bale"]} if "bale" in errors else {})})
    plain.fill({**umoci, **({"bale": samples["bale --copy"]} if "bale --copy" in samples else {})},
               {**umoci_err, **({"bale": errors["bale --copy"]} if "bale --copy" in errors else {})})
    return [overlay, plain]


# ---------------------------------------------------------------------------
# commit of a one-file change
# ---------------------------------------------------------------------------

CHANGED_FILE = "data/layer00/d0000/f000000.txt"


def _change_one_file(rootfs: Path, i: int) -> None:
    (rootfs / CHANGED_FILE).write_text(f"changed for commit {i}\n")


class _BaleCommit:
    """Each round: a fresh overlay unpack (untimed), one file changed, and
    the timed `bale commit`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.scratch("commit-store")
        timing.run(ctx.bale(self.store, "import", str(ctx.image.layout), f"{TAG}:1"))

    def once(self, i: int) -> int:
        bundle = self.ctx.scratch("commit-bundle")
        try:
            timing.run(self.ctx.bale(self.store, "unpack", f"{TAG}:1", str(bundle)))
            _change_one_file(bundle / "rootfs", i)
            return timing.timed(self.ctx.bale(self.store, "commit", str(bundle), f"{TAG}:commit{i}"))
        finally:
            _delete_bundle(self.ctx, self.store, bundle)

    def close(self) -> None:
        _remove_tree(self.store)


class _UmociRepack:
    """One umoci unpack (slow, untimed) reused: each round changes one file
    and repacks; umoci refreshes its manifest of the tree on repack, so each
    repack carries exactly that one change."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # repack adds images to the layout: work on a copy of it.
        self.layout = ctx.scratch("repack-layout")
        self.bundle = ctx.scratch("repack-bundle")
        timing.run(["/bin/cp", "-a", str(ctx.image.layout), str(self.layout)])
        timing.run([ctx.tools.umoci, "unpack", "--image", f"{self.layout}:{TAG}", str(self.bundle)])

    def once(self, i: int) -> int:
        _change_one_file(self.bundle / "rootfs", i)
        return timing.timed([self.ctx.tools.umoci, "repack", "--image", f"{self.layout}:commit{i}", str(self.bundle)])

    def close(self) -> None:
        _remove_tree(self.bundle)
        _remove_tree(self.layout)


def bench_commit(ctx: Context) -> Row:
    row = Row("commit", "commit of a one-file change vs umoci repack", "s", 1e9,
              Target("bale", "umoci", 0.1, "at least 10x faster than umoci repack"))
    runners: dict[str, _BaleCommit | _UmociRepack] = {}
    setup_errors: dict[str, str] = {}
    for name, make in (("bale", _BaleCommit), ("umoci", _UmociRepack)):
        try:
            runners[name] = make(ctx)
        except timing.CommandFailed as err:
            setup_errors[name] = f"setup: {err}"
    try:
        samples, errors = timing.interleaved(list(runners), ctx.runs, ctx.warmup,
                                             lambda name, i: runners[name].once(i))
    finally:
        for runner in runners.values():
            runner.close()
    row.fill(samples, {**errors, **setup_errors})
    return row


# ---------------------------------------------------------------------------
# pull / push against a local docker-registry
# ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    """docker-registry on 127.0.0.1 with its storage on our tmpfs; `reset`
    restarts it empty so every push uploads every blob."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        storage = self.workdir / "registry-storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
        )
        log = open(self.workdir / "registry.log", "ab")
        self.process = subprocess.Popen([self.binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log)
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + REGISTRY_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: see {self.workdir / 'registry.log'}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer on {self.host} within {REGISTRY_START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def reset(self) -> None:
        self.stop()
        _remove_tree(self.workdir / "registry-storage")
        self.start()


def _help_usage(binary: str, *command: str) -> str | None:
    """The usage line of `binary command --help`, or None if there is no such command."""
    try:
        out = timing.run_capture([binary, *command, "--help"])
    except timing.CommandFailed:
        return None
    match = re.search(r"^Usage: .*$", out, re.MULTILINE)
    return match.group(0) if match else ""


def _positionals(usage: str) -> int:
    return len(re.findall(r"<[A-Z_]+>", usage.split("[OPTIONS]")[-1]))


def _registry_rows() -> tuple[Row, Row]:
    pull = Row("pull", "pull from a local docker-registry vs skopeo copy", "s", 1e9,
               Target("bale", "skopeo", 1.0, "at least as fast as skopeo"))
    push = Row("push", "push to a local docker-registry vs skopeo copy", "s", 1e9)
    return pull, push


def _bale_push_argv(ctx: Context, store: Path, usage: str, dest: str) -> list[list[str]]:
    """bale push IMAGE DEST, or (one positional) tag first then push."""
    if _positionals(usage) >= 2:
        return [ctx.bale(store, "push", f"{TAG}:1", dest)]
    return [ctx.bale(store, "tag", f"{TAG}:1", dest), ctx.bale(store, "push", dest)]


def bench_registry(ctx: Context) -> list[Row]:
    pull, push = _registry_rows()
    pull_usage, push_usage = _help_usage(ctx.tools.bale, "pull"), _help_usage(ctx.tools.bale, "push")
    missing = [name for name, usage in (("pull", pull_usage), ("push", push_usage)) if usage is None]
    if missing or ctx.tools.registry is None:
        reason = ("n/a (docker-registry not installed)" if ctx.tools.registry is None
                  else f"n/a (bale {' and '.join(missing)} not built yet)")
        for row in (pull, push):
            row.errors.update({"bale": reason, "skopeo": "not run: nothing to compare with"})
        return [pull, push]
    registry = LocalRegistry(ctx.tools.registry, ctx.scratch("registry"))
    store = ctx.scratch("push-store")
    try:
        registry.start()
        timing.run(ctx.bale(store, "import", str(ctx.image.layout), f"{TAG}:1"))
        _measure_push(ctx, registry, store, push_usage or "", push)
        registry.reset()
        source = f"{registry.host}/bench/image:1"
        timing.run([ctx.tools.skopeo, "copy", "-q", "--dest-tls-verify=false",
                    f"oci:{ctx.image.layout}:{TAG}", f"docker://{source}"])
        _measure_pull(ctx, source, pull)
    except (RuntimeError, OSError, timing.CommandFailed) as err:
        for row in (pull, push):
            if not row.results:
                row.errors.setdefault("bale", f"setup: {err}")
    finally:
        registry.stop()
        _remove_tree(store)
    return [pull, push]


def _measure_push(ctx: Context, registry: LocalRegistry, store: Path, usage: str, row: Row) -> None:
    def once(name: str, i: int) -> int:
        registry.reset()  # untimed: an empty registry, so every blob is uploaded
        dest = f"{registry.host}/bench/{name}:{i}"
        if name == "skopeo":
            return timing.timed([ctx.tools.skopeo, "copy", "-q", "--dest-tls-verify=false",
                                 f"oci:{ctx.image.layout}:{TAG}", f"docker://{dest}"])
        steps = _bale_push_argv(ctx, store, usage, dest)
        for step in steps[:-1]:
            timing.run(step)
        return timing.timed(steps[-1])

    samples, errors = timing.interleaved(["bale", "skopeo"], ctx.runs, ctx.warmup, once)
    row.fill(samples, errors)


def _measure_pull(ctx: Context, source: str, row: Row) -> None:
    def once(name: str, i: int) -> int:
        target = ctx.scratch(f"pull-{name}")
        try:
            if name == "skopeo":
                return timing.timed([ctx.tools.skopeo, "copy", "-q", "--src-tls-verify=false",
                                     f"docker://{source}", f"oci:{target}:{TAG}"])
            return timing.timed(ctx.bale(target, "pull", source))
        finally:
            _remove_tree(target)

    samples, errors = timing.interleaved(["bale", "skopeo"], ctx.runs, ctx.warmup, once)
    row.fill(samples, errors)
