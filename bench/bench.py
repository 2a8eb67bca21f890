"""`make bench`: berth and bale measured against runc, crun, umoci and
skopeo in one run. Started by bench/run.sh inside a private mount
namespace; see bench/README.md.

Settings (environment): BENCH_RUNS, BENCH_WARMUP, BENCH_BATCH_RUNS,
BENCH_ROOT_SIZE, BENCH_IMAGE_MB, BENCH_IMAGE_LAYERS, BENCH_IMAGE_RUNS,
BENCH_ONLY (runtime|bale), BERTH, BALE.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import timing
from report import Row, markdown_table, pair_table, write_json

CONTROLLERS_FILE = Path("/sys/fs/cgroup/unified/cgroup.controllers")


class SetupError(Exception):
    """The benchmark cannot run as asked (bad setting, missing tool)."""


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SetupError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SetupError(f"{name}={value} is below the minimum {minimum}")
    return value


def require_executable(path: str, what: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SetupError(f"{what} not found at {path} (bench/run.sh installs and builds what is missing)")
    return path


def snapshot(binary: str, workdir: Path) -> str:
    """Measure a copy: a rebuild by someone else mid-run cannot change it."""
    dest = workdir / "bin" / Path(binary).name
    dest.parent.mkdir(exist_ok=True)
    shutil.copy2(binary, dest)
    return str(dest)


def check_cgroup_cover() -> None:
    """crun refuses the hybrid layout; run.sh hides cgroup2's controllers
    in our private mount namespace so every runtime sees the same v1 view."""
    if CONTROLLERS_FILE.exists() and CONTROLLERS_FILE.read_text().strip():
        raise SetupError(
            f"{CONTROLLERS_FILE} is not covered: start the benchmark with bench/run.sh "
            "(it runs everything in a private mount namespace)"
        )


def first_line(argv: list[str]) -> str:
    try:
        return timing.run_capture(argv).strip().splitlines()[0]
    except (timing.CommandFailed, IndexError, OSError) as err:
        return f"unknown ({err})"


def git_revision(repo: Path) -> str:
    try:
        rev = timing.run_capture(["/usr/bin/git", "-C", str(repo), "rev-parse", "--short", "HEAD"]).strip()
        dirty = timing.run_capture(["/usr/bin/git", "-C", str(repo), "status", "--porcelain", "--", "src", "bale", "cgroups"])
        return rev + ("+dirty" if dirty.strip() else "")
    except (timing.CommandFailed, OSError) as err:
        return f"unknown ({err})"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass(frozen=True)
class Settings:
    runs: int
    warmup: int
    batch_runs: int
    root_size: int
    image_mb: int
    image_layers: int
    image_runs: int
    image_warmup: int

    @staticmethod
    def from_env() -> "Settings":
        """Every setting checked before anything is built or measured."""
        return Settings(
            runs=env_int("BENCH_RUNS", 30), warmup=env_int("BENCH_WARMUP", 3, minimum=0),
            batch_runs=env_int("BENCH_BATCH_RUNS", 5), root_size=env_int("BENCH_ROOT_SIZE", 1000),
            image_mb=env_int("BENCH_IMAGE_MB", 300), image_layers=env_int("BENCH_IMAGE_LAYERS", 10),
            image_runs=env_int("BENCH_IMAGE_RUNS", 3), image_warmup=env_int("BENCH_IMAGE_WARMUP", 0, minimum=0),
        )


def runtime_section(args: argparse.Namespace, settings: Settings, workdir: Path, meta: dict) -> list[Row]:
    import runtimes

    berth = snapshot(require_executable(os.environ.get("BERTH", str(args.repo / "target/release/berth")), "berth"),
                     workdir)
    paths = {"berth": berth, "runc": require_executable("/usr/sbin/runc", "runc"),
             "crun": require_executable("/usr/bin/crun", "crun")}
    youki = shutil.which("youki")
    if youki:
        paths["youki"] = youki
    rts = [runtimes.Runtime(name, path, str(workdir / "state" / name)) for name, path in paths.items()]
    meta["versions"].update({rt.name: first_line([rt.path, "--version"]) for rt in rts})
    bundles = runtimes.prepare_bundles(workdir, paths["runc"], require_executable("/bin/busybox", "busybox"),
                                       args.client_specs)
    ctx = runtimes.Context(
        runtimes=rts, bundles=bundles, ids=runtimes.Ids(),
        runs=settings.runs, warmup=settings.warmup, batch_runs=settings.batch_runs, root_size=settings.root_size,
    )
    meta["settings"].update(runs=ctx.runs, warmup=ctx.warmup, batch_runs=ctx.batch_runs, root_size=ctx.root_size)
    steps = [
        runtimes.bench_run_true, runtimes.bench_shim_cycle, runtimes.bench_exec,
        runtimes.bench_seccomp_run, runtimes.bench_sequential, runtimes.bench_parallel_create,
        runtimes.bench_crowded_root, runtimes.bench_peak_rss, runtimes.bench_memory_floor,
        runtimes.bench_binary_size,
    ]
    rows: list[Row] = []
    try:
        for step in steps:
            progress(f"runtimes: {step.__name__.removeprefix('bench_')}")
            result = step(ctx)
            rows.extend(result if isinstance(result, list) else [result])
    finally:
        for rt in rts:
            runtimes.remove_all(rt)
    return rows


def bale_section(args: argparse.Namespace, settings: Settings, workdir: Path, meta: dict) -> list[Row]:
    import images

    bale = snapshot(require_executable(os.environ.get("BALE", str(args.repo / "target/release/bale")), "bale"),
                    workdir)
    tools = images.Tools(
        bale=bale, umoci=require_executable("/usr/bin/umoci", "umoci"),
        skopeo=require_executable("/usr/bin/skopeo", "skopeo"), registry=shutil.which("docker-registry"),
    )
    meta["versions"].update(bale=first_line([bale, "--version"]), umoci=first_line([tools.umoci, "--version"]),
                            skopeo=first_line([tools.skopeo, "--version"]))
    try:
        spec = images.image_spec(settings.image_mb << 20, settings.image_layers)
    except ValueError as err:
        raise SetupError(str(err)) from None
    runs, warmup = settings.image_runs, settings.image_warmup
    meta["settings"].update(image_runs=runs, image_warmup=warmup)
    image = images.cached_image(args.out / "cache", spec, workdir / "image", progress)
    meta["image"] = image.summary
    ctx = images.Context(tools, image, workdir, runs, warmup)
    rows: list[Row] = []
    for step in (images.bench_import_unpack, images.bench_commit, images.bench_registry):
        progress(f"bale: {step.__name__.removeprefix('bench_')}")
        result = step(ctx)
        rows.extend(result if isinstance(result, list) else [result])
    return rows


def progress(text: str) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="a fresh tmpfs for bundles, state and images")
    parser.add_argument("--check-settings", action="store_true", help="only check the BENCH_* settings")
    parser.add_argument("--repo", type=Path, default=here.parent)
    parser.add_argument("--out", type=Path, default=here.parent / "target" / "bench")
    parser.add_argument("--client-specs", type=Path, default=here.parent.parent / "shared" / "client-specs")
    parser.add_argument("--only", choices=["runtime", "bale"], default=os.environ.get("BENCH_ONLY") or None)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        settings = Settings.from_env()
        if args.check_settings:
            return 0
        if args.workdir is None:
            raise SetupError("--workdir is required (bench/run.sh passes it)")
        check_cgroup_cover()
        timing.use_scratch_dir(str(args.workdir))
        timing.become_subreaper()
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpus": os.cpu_count(), "load_before": load_average(),
            "berth_revision": git_revision(args.repo), "versions": {}, "settings": {},
        }
        sections: list[tuple[str, list[Row]]] = []
        if args.only in (None, "runtime"):
            sections.append(("runtime", runtime_section(args, settings, args.workdir, meta)))
        if args.only in (None, "bale"):
            sections.append(("bale", bale_section(args, settings, args.workdir, meta)))
    except (SetupError, timing.CommandFailed) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    meta["load_after"] = load_average()
    all_rows = [row for _, rows in sections for row in rows]
    text = render(sections, meta)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    write_json(args.out / "results.json", meta, all_rows)
    print(f"\nwritten: {args.out / 'results.json'} and results.md", file=sys.stderr)
    failed = [f"{row.key}/{name}" for row in all_rows for name, err in row.errors.items()
              if name in ("berth", "bale") and not err.startswith("n/a")]
    if failed:
        print(f"bench: berth/bale failed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def render(sections: list[tuple[str, list[Row]]], meta: dict) -> str:
    parts = [f"berth bench {meta['date']} (kernel {meta['kernel']}, {meta['cpus']} CPUs, "
             f"berth {meta['berth_revision']}; medians; load {meta['load_before']} → {meta['load_after']})"]
    for name, rows in sections:
        if name == "runtime":
            subjects = [n for n in ("berth", "runc", "crun", "youki") if n in meta["versions"]]
            parts.append(markdown_table(rows, subjects, [("berth", "runc"), ("berth", "crun")]))
        else:
            parts.append(pair_table(rows, "bale"))
    parts.append("versions: " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()))
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
