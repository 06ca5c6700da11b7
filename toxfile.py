"""tox plugin: where torch comes from, and what PEFT_SPEC / TRANSFORMERS_SPEC mean.

TORCH_WHEELS picks the source of the CPU build of torch for every tox environment:
- unset: the PyTorch CPU wheel index (https://download.pytorch.org/whl/cpu), so no resolver
  ever pulls a multi-GB CUDA build from PyPI;
- a URL: that package index instead (a mirror of the CPU index);
- a folder: a local folder of wheels (find-links), e.g. on machines without the index.
Either way torch is pinned to the CPU build by constraints-torch-cpu.txt.

TORCH_DEVICE=cuda (default cpu) is for GPU runners only: torch then comes from TORCH_CUDA_WHEELS
(default: the PyTorch cu128 index; a URL or a folder as above) and constraints-torch-cuda.txt
pins the same torch version without the +cpu tag. The matrix's CUDA cells use the same switch.

PEFT_SPEC / TRANSFORMERS_SPEC (for the peft-pr environment): a version ("0.21.2"), any pip
requirement ("peft==0.21.2", "peft @ git+https://..."), a git URL or a local path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tox.plugin import impl

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYTORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
# per TORCH_DEVICE: (variable naming the wheel source, default source, constraints file)
TORCH_SOURCES = {
    "cpu": ("TORCH_WHEELS", PYTORCH_CPU_INDEX, "constraints-torch-cpu.txt"),
    "cuda": ("TORCH_CUDA_WHEELS", PYTORCH_CUDA_INDEX, "constraints-torch-cuda.txt"),
}
_VERSION = re.compile(r"^\d+(\.\d+)*([a-z]+\d*)?(\.dev\d+)?$")
_OPERATOR = re.compile(r"^(==|>=|<=|~=|!=|<|>)")


class SpecError(ValueError):
    pass


def requirement(package: str, spec: str) -> str:
    """Turn a user's PEFT_SPEC-style value into one pip requirement line, or say why not."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"{package}: empty version spec")
    if _VERSION.match(spec):
        return f"{package}=={spec}"
    if _OPERATOR.match(spec):
        return f"{package}{spec}"
    if spec.startswith(("git+", "https://", "http://", "file://")):
        return f"{package} @ {spec}"
    if spec.startswith((".", "/", "~")) or os.sep in spec:
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise SpecError(f"{package}: local path {spec!r} does not exist")
        return f"{package} @ {path.as_uri()}"
    if spec.lower().startswith(package):
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            Requirement(spec)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            raise SpecError(f"{package}: invalid requirement {spec!r} ({reason})") from None
        return spec
    raise SpecError(f"{package}: unknown version spec {spec!r} (use a version, a requirement, a git URL or a path)")


def torch_source_env(value: str | None, device: str = "cpu") -> dict[str, str]:
    """uv settings for TORCH_WHEELS, or TORCH_CUDA_WHEELS with device="cuda" (module docstring)."""
    var, default, _ = TORCH_SOURCES[device]
    value = (value or default).strip()
    if "://" in value:
        return {"UV_INDEX": f"pytorch-{device}={value}"}
    path = Path(value).expanduser()
    if not path.is_dir():
        raise SpecError(f"{var}={value!r} is neither a URL nor an existing folder of wheels")
    return {"UV_FIND_LINKS": str(path.resolve())}


def torch_settings(environ, device: str | None = None) -> dict[str, str]:
    """Everything uv needs to install torch for `device` (default: $TORCH_DEVICE, else cpu):
    the wheel source, and PREFIX_TORCH_CONSTRAINTS (the constraints file, for tox.ini)."""
    device = device or environ.get("TORCH_DEVICE") or "cpu"
    if device not in TORCH_SOURCES:
        raise SpecError(f"TORCH_DEVICE={device!r} is not one of {', '.join(TORCH_SOURCES)}")
    var, _, constraints = TORCH_SOURCES[device]
    env = torch_source_env(environ.get(var), device)
    env["PREFIX_TORCH_CONSTRAINTS"] = str(Path(__file__).with_name(constraints))
    return env


def _pr_requirements() -> dict[str, str]:
    if not os.environ.get("PEFT_SPEC"):
        raise SpecError("peft-pr needs PEFT_SPEC (a version, requirement, git URL or path); it is not set")
    return {
        "PREFIX_PEFT_REQ": requirement("peft", os.environ["PEFT_SPEC"]),
        "PREFIX_TRANSFORMERS_REQ": requirement("transformers", os.environ.get("TRANSFORMERS_SPEC") or ">=4.40"),
    }


def _fail(exc: SpecError):
    raise SystemExit(f"error: {exc}") from None


@impl
def tox_add_core_config(core_conf, state) -> None:
    # Runs once, before any environment is configured: bad TORCH_WHEELS stops everything.
    try:
        os.environ.update(torch_settings(os.environ))
    except SpecError as exc:
        _fail(exc)
    try:  # only peft-pr reads these; its own install step reports a bad or missing spec
        os.environ.update(_pr_requirements())
    except SpecError:
        pass


@impl
def tox_on_install(tox_env, arguments, section, of_type) -> None:
    if tox_env.name == "peft-pr" and of_type == "deps":
        try:
            _pr_requirements()
        except SpecError as exc:
            _fail(exc)
