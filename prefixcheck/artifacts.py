"""Reading saved adapters: safetensors and JSON only, never pickles.

Every problem with an artifact (missing, truncated, not JSON, a tensor with NaNs, a path that
leaves its folder) raises `ArtifactError` with one line that names the file and the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLE_FILES = ("adapter_model.bin",)


class ArtifactError(ValueError):
    """An artifact that cannot be trusted; the message names the file."""


def inside(root: str | Path, relative: str) -> Path:
    """`root/relative`, refusing paths that escape `root` (`..`, absolute paths, links out)."""
    root = Path(root).resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ArtifactError(f"{relative}: path escapes the artifact folder {root}")
    return path


def load_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_tensors(path: str | Path, *, allow_nonfinite: bool = False) -> dict:
    """All tensors of one safetensors file, on CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: not a readable safetensors file ({exc})") from None
    if not allow_nonfinite:
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                raise ArtifactError(f"{path}: tensor {name!r} holds NaN or inf")
    return tensors


def read_adapter(directory: str | Path) -> tuple[dict, dict]:
    """(adapter_config.json as a dict, the adapter's tensors) of one saved adapter folder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: adapter folder missing")
    weights = inside(directory, WEIGHTS_FILE)
    if not weights.exists() and any((directory / p).exists() for p in PICKLE_FILES):
        raise ArtifactError(f"{directory}: only a pickle adapter_model.bin; this suite reads safetensors only")
    return load_json(inside(directory, CONFIG_FILE)), load_tensors(weights)
