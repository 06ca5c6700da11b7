"""Artifact folders of the matrix: what a producer writes for one case, and how a consumer
verifies it before trusting it (safetensors and JSON only; sha256 of every file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefixcheck.artifacts import ArtifactError, inside, load_json, load_tensors

SCHEMA = 1
MANIFEST = "manifest.json"
REQUIRED = (
    "base/config.json",
    "base/model.safetensors",
    "adapter/adapter_config.json",
    "adapter/adapter_model.safetensors",
    "tensors.safetensors",
)
TENSORS = ("input_ids", "attention_mask", "logits", "base_logits")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(folder: Path, fields: dict) -> dict:
    """Write manifest.json for everything already in `folder` (sha256 per file)."""
    files = {
        str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    manifest = {"schema": SCHEMA, **fields, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def verify(folder: Path) -> dict:
    """The manifest of a trustworthy artifact folder, or ArtifactError with the reason."""
    manifest = load_json(inside(folder, MANIFEST))
    if manifest.get("schema") != SCHEMA:
        raise ArtifactError(f"{folder / MANIFEST}: schema {manifest.get('schema')!r}, this consumer reads {SCHEMA}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{folder / MANIFEST}: no file list")
    for required in REQUIRED:
        if required not in files:
            raise ArtifactError(f"{folder}: {required} is not in the manifest")
    for rel, digest in files.items():
        path = inside(folder, rel)
        if not path.is_file():
            raise ArtifactError(f"{path}: missing")
        if not rel.endswith((".json", ".safetensors")):
            raise ArtifactError(f"{path}: not safetensors or JSON")
        if sha256(path) != digest:
            raise ArtifactError(f"{path}: sha256 differs from the manifest (corrupted or truncated)")
    tensors = load_tensors(inside(folder, "tensors.safetensors"))
    for name in TENSORS:
        if name not in tensors:
            raise ArtifactError(f"{folder / 'tensors.safetensors'}: no {name!r} tensor")
    load_json(inside(folder, "adapter/adapter_config.json"))
    load_tensors(inside(folder, "adapter/adapter_model.safetensors"))
    return manifest


def code_digest() -> str:
    """One hash over the code that makes and judges artifacts (the prefixcheck engine, registry,
    tolerances, architectures; the strategies that draw cases; produce, consume and this module):
    a verdict or an artifact made by other code is redone, never reused."""
    here = Path(__file__).parent
    engine = here.parents[1] / "prefixcheck"
    files = sorted(engine.rglob("*.py")) + sorted(engine.rglob("*.toml"))
    files += sorted((here.parents[1] / "strategies").glob("*.py"))
    files += [here / "produce.py", here / "consume.py", Path(__file__)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def digest_of(folders: list[Path]) -> str:
    """One hash over the manifests of many artifact folders (resume: skip unchanged work)."""
    digest = hashlib.sha256()
    for folder in sorted(folders):
        path = folder / MANIFEST
        digest.update(str(folder.name).encode())
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()
