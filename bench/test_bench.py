"""Tests of the benchmark's own machinery (statistics, interleaving, the
report, the image generator). No root needed.

    python3 -m unittest discover -s bench -p 'test_*.py'
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
import unittest
from pathlib import Path

import imagegen
import timing
from report import Row, Target, markdown_table, pair_table, write_json


class SummaryTests(unittest.TestCase):
    def test_median_and_deciles(self) -> None:
        s = timing.summarize([5, 1, 4, 2, 3])
        self.assertEqual(s.median, 3)
        self.assertEqual(s.n, 5)
        self.assertLess(s.p10, s.median)
        self.assertGreater(s.p90, s.median)

    def test_single_sample(self) -> None:
        s = timing.summarize([7])
        self.assertEqual((s.median, s.p10, s.p90), (7, 7, 7))

    def test_no_samples_is_an_error(self) -> None:
        with self.assertRaises(ValueError):
            timing.summarize([])


class InterleavedTests(unittest.TestCase):
    def test_warmup_rounds_are_not_recorded_and_order_rotates(self) -> None:
        calls: list[tuple[str, int]] = []

        def once(name: str, i: int) -> float:
            calls.append((name, i))
            return float(i)

        samples, errors = timing.interleaved(["a", "b", "c"], runs=3, warmup=2, once=once)
        self.assertEqual(errors, {})
        self.assertEqual(samples, {"a": [2.0, 3.0, 4.0], "b": [2.0, 3.0, 4.0], "c": [2.0, 3.0, 4.0]})
        first_per_round = [calls[i * 3][0] for i in range(5)]
        self.assertEqual(first_per_round, ["a", "b", "c", "a", "b"])

    def test_a_failing_subject_is_dropped_with_its_error(self) -> None:
        def once(name: str, i: int) -> float:
            if name == "bad" and i == 1:
                raise timing.CommandFailed(["/bin/bad"], 256, "it broke\n")
            return 1.0

        samples, errors = timing.interleaved(["good", "bad"], runs=4, warmup=0, once=once)
        self.assertEqual(samples, {"good": [1.0] * 4})
        self.assertIn("it broke", errors["bad"])
        self.assertIn("exited 1", errors["bad"])


class SpawnTests(unittest.TestCase):
    def setUp(self) -> None:
        self.scratch = tempfile.TemporaryDirectory()
        timing.use_scratch_dir(self.scratch.name)

    def tearDown(self) -> None:
        self.scratch.cleanup()

    def test_failure_carries_the_last_stderr_line_and_leaves_no_file(self) -> None:
        with self.assertRaises(timing.CommandFailed) as caught:
            timing.run(["/bin/sh", "-c", "echo first >&2; echo boom >&2; exit 3"])
        self.assertEqual(caught.exception.status >> 8, 3)
        self.assertIn("exited 3: boom", str(caught.exception))
        self.assertEqual(list(Path(self.scratch.name).iterdir()), [])

    def test_capture_and_timing(self) -> None:
        self.assertEqual(timing.run_capture(["/bin/echo", "hi"]), "hi\n")
        self.assertGreater(timing.timed(["/bin/true"]), 0)

    def test_wait_pid_exit_reaps_a_child(self) -> None:
        child = timing.spawn(["/bin/sleep", "0.05"])
        timing.wait_pid_exit(child.pid, timeout_s=5)
        with self.assertRaises(ChildProcessError):
            import os
            os.waitpid(child.pid, 0)


class ReportTests(unittest.TestCase):
    def row(self) -> Row:
        row = Row("run", "run", "ms", 1e6, Target("berth", "crun", 0.9, "at most 0.9x crun"))
        row.fill({"berth": [8e6, 9e6, 10e6], "crun": [10e6, 10e6, 10e6]}, {"runc": "n/a (missing)"})
        return row

    def test_relative_target(self) -> None:
        row = self.row()
        self.assertTrue(row.target.met(row))
        row.results.clear()
        row.fill({"berth": [9.5e6], "crun": [10e6]}, {})
        self.assertFalse(row.target.met(row))

    def test_absolute_target_and_unknown(self) -> None:
        row = Row("size", "size", "MiB", 1 << 20, Target("berth", None, 3 << 20, "under 3 MiB"))
        self.assertIsNone(row.target.met(row))
        row.fill({"berth": [2 << 20]}, {})
        self.assertTrue(row.target.met(row))

    def test_table_shows_medians_ratios_and_footnotes(self) -> None:
        text = markdown_table([self.row()], ["berth", "runc", "crun"], [("berth", "crun")])
        line = text.splitlines()[2]
        self.assertIn("| 9.00 |", line)
        self.assertIn("n/a [1]", line)
        self.assertIn("0.90×", line)
        self.assertIn("| yes |", line)
        self.assertIn("[1] run / runc: n/a (missing)", text)

    def test_pair_table_names_the_other_tool(self) -> None:
        row = Row("commit", "commit", "s", 1e9, Target("bale", "umoci", 0.1, "10x"))
        row.fill({"bale": [1e8], "umoci": [4e9]}, {})
        line = pair_table([row], "bale").splitlines()[2]
        self.assertIn("umoci 4.00", line)
        self.assertIn("| 0.1 |", line)
        self.assertIn("0.025×", line)

    def test_json_is_written_whole(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "out" / "results.json"
            write_json(path, {"date": "x"}, [self.row()])
            data = json.loads(path.read_text())
            self.assertEqual(data["rows"][0]["results"]["berth"]["median"], 9.0)
            self.assertTrue(data["rows"][0]["target"]["met"])
            self.assertEqual([p.name for p in path.parent.iterdir()], ["results.json"])


class ImageGeneratorTests(unittest.TestCase):
    def test_layout_is_a_valid_oci_image(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            layout = Path(d) / "img"
            summary = imagegen.generate_layout(layout, "t", imagegen.ImageSpec(256 << 10, 2, mean_file_bytes=2048))
            self.assertTrue(imagegen.layout_blob_digests_ok(layout))
            index = json.loads((layout / "index.json").read_text())
            (entry,) = index["manifests"]
            self.assertEqual(entry["annotations"]["org.opencontainers.image.ref.name"], "t")
            manifest = json.loads(self.blob(layout, entry["digest"]))
            config = json.loads(self.blob(layout, manifest["config"]["digest"]))
            files = 0
            for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
                raw = gzip.decompress(self.blob(layout, layer["digest"]))
                self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), diff_id)
                with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                    files += sum(1 for m in tar.getmembers() if m.isfile())
            self.assertEqual(files, summary["files"])
            self.assertEqual(summary["layers"], 2)

    def test_generation_is_deterministic(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            spec = imagegen.ImageSpec(64 << 10, 1, mean_file_bytes=1024)
            imagegen.generate_layout(Path(d) / "a", "t", spec)
            imagegen.generate_layout(Path(d) / "b", "t", spec)
            self.assertEqual((Path(d) / "a" / "index.json").read_text(), (Path(d) / "b" / "index.json").read_text())

    def test_too_small_an_image_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            imagegen.ImageSpec(1000, 10)

    @staticmethod
    def blob(layout: Path, digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


if __name__ == "__main__":
    unittest.main()
