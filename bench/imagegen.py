"""Generate a synthetic OCI image layout: N gzip layers of many small files.

The content is deterministic (seeded) and about as compressible as real
text-heavy images (base64 of random bytes), so every tool pays for real
decompression and real file creation. Nothing here talks to a registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

# Files per directory, so no directory gets unreasonably large.
FILES_PER_DIR = 250
# A fixed timestamp keeps layers reproducible (2024-01-01).
MTIME = 1_704_067_200
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class ImageSpec:
    total_bytes: int
    layers: int
    mean_file_bytes: int = 4096
    seed: int = 10

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError("an image needs at least one layer")
        if self.total_bytes < self.layers * self.mean_file_bytes:
            raise ValueError(
                f"{self.total_bytes} bytes is too small for {self.layers} layers "
                f"of {self.mean_file_bytes}-byte files"
            )


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class LayerBlob:
    blob: Blob
    diff_id: str
    files: int


class _HashingGzipWriter:
    """A write-only file object: hashes what tar writes, gzips it to `out`
    and hashes the compressed bytes too (the blob digest)."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self._out = out
        self._raw_hash = hashlib.sha256()
        self._gz_hash = hashlib.sha256()
        self._gz_size = 0
        # wbits 31: a gzip stream; level 6 is what most image tools write.
        self._zlib = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self._raw_hash.update(data)
        self._emit(self._zlib.compress(data))
        return len(data)

    def finish(self) -> tuple[str, Blob]:
        self._emit(self._zlib.flush())
        diff_id = "sha256:" + self._raw_hash.hexdigest()
        return diff_id, Blob("sha256:" + self._gz_hash.hexdigest(), self._gz_size)

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self._gz_hash.update(chunk)
            self._gz_size += len(chunk)
            self._out.write(chunk)


def _dir_entry(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = MTIME
    return info


def _file_entry(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = MTIME
    return info


def _file_content(rng: random.Random, mean: int) -> bytes:
    """Between half and 1.5x the mean size, base64 text."""
    size = rng.randint(mean // 2, mean + mean // 2)
    return base64.b64encode(rng.randbytes(size * 3 // 4 + 1))[:size]


def _write_layer_tar(tar: tarfile.TarFile, index: int, budget: int, spec: ImageSpec, rng: random.Random) -> int:
    """Fill one layer with files until `budget` bytes; returns the file count."""
    top = f"data/layer{index:02d}"
    if index == 0:
        tar.addfile(_dir_entry("data"))
    tar.addfile(_dir_entry(top))
    written = files = 0
    while written < budget:
        if files % FILES_PER_DIR == 0:
            tar.addfile(_dir_entry(f"{top}/d{files // FILES_PER_DIR:04d}"))
        content = _file_content(rng, spec.mean_file_bytes)
        name = f"{top}/d{files // FILES_PER_DIR:04d}/f{files:06d}.txt"
        tar.addfile(_file_entry(name, len(content)), io.BytesIO(content))
        written += len(content)
        files += 1
    return files


def _blob_path(layout: Path, digest: str) -> Path:
    algo, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algo / hexdigest


def _write_layer(layout: Path, index: int, budget: int, spec: ImageSpec, rng: random.Random) -> LayerBlob:
    tmp = layout / "blobs" / "sha256" / f".layer{index}.tmp"
    with open(tmp, "wb") as out:
        writer = _HashingGzipWriter(out)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            files = _write_layer_tar(tar, index, budget, spec, rng)
        diff_id, blob = writer.finish()
    tmp.rename(_blob_path(layout, blob.digest))
    return LayerBlob(blob, diff_id, files)


def _write_json_blob(layout: Path, document: dict) -> Blob:
    data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob_path(layout, digest).write_bytes(data)
    return Blob(digest, len(data))


def _image_config(layers: list[LayerBlob]) -> dict:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"berth bench: layer {i} ({layer.files} files)"}
            for i, layer in enumerate(layers)
        ],
    }


def _descriptor(media_type: str, blob: Blob) -> dict:
    return {"mediaType": media_type, "digest": blob.digest, "size": blob.size}


def generate_layout(layout: Path, tag: str, spec: ImageSpec) -> dict:
    """Write an OCI image layout at `layout` (which must not exist yet).

    Returns a summary: total files, uncompressed and compressed bytes.
    """
    layout.mkdir(parents=False)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    rng = random.Random(spec.seed)
    per_layer = spec.total_bytes // spec.layers
    layers = [_write_layer(layout, i, per_layer, spec, rng) for i in range(spec.layers)]
    config = _write_json_blob(layout, _image_config(layers))
    manifest = _write_json_blob(
        layout,
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": _descriptor(MEDIA_CONFIG, config),
            "layers": [_descriptor(MEDIA_LAYER_GZIP, layer.blob) for layer in layers],
        },
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **_descriptor(MEDIA_MANIFEST, manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return {
        "layers": spec.layers,
        "files": sum(layer.files for layer in layers),
        "compressed_bytes": sum(layer.blob.size for layer in layers),
        "content_bytes": per_layer * spec.layers,
    }


def layout_blob_digests_ok(layout: Path) -> bool:
    """Every blob's name is its sha256 (a self-check for the generator)."""
    for blob in (layout / "blobs" / "sha256").iterdir():
        digest = hashlib.sha256()
        with open(blob, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != blob.name:
            return False
    return True


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4:
        sys.exit("usage: imagegen.py LAYOUT_DIR TOTAL_MB LAYERS")
    summary = generate_layout(
        Path(sys.argv[1]), "bench", ImageSpec(int(sys.argv[2]) << 20, int(sys.argv[3]))
    )
    print(json.dumps(summary))

