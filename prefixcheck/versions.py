"""What is installed, and what the installed PEFT/transformers can do (feature-detected)."""

from __future__ import annotations

import dataclasses
import platform
from functools import cache
from importlib import metadata

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

PACKAGES = ("peft", "transformers", "torch", "accelerate")


class VersionSpecError(ValueError):
    """A version specifier that does not parse, or names a package we do not track."""


@cache
def installed() -> dict[str, str]:
    """Versions of the packages that decide prefix-tuning behaviour, plus python."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def parse_spec(package: str, spec: str) -> SpecifierSet:
    """A PEP 440 specifier for one tracked package; a clear error names the bad input."""
    if package not in PACKAGES:
        raise VersionSpecError(f"unknown package {package!r} in a version spec; expected one of {PACKAGES}")
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        raise VersionSpecError(f"invalid version spec for {package}: {spec!r}") from None


def satisfies(package: str, spec: str, versions: dict[str, str] | None = None) -> bool:
    """Whether the installed (or given) version of `package` lies in `spec`.

    Pre-releases and dev builds (PEFT main is `X.Y.Z.devN`) count as inside a range that
    contains them, so an open-ended entry like ">=0.14" keeps covering PEFT main.
    """
    versions = versions or installed()
    have = versions.get(package, "not installed")
    if have == "not installed":
        return False
    return parse_spec(package, spec).contains(Version(have), prereleases=True)


@dataclasses.dataclass(frozen=True)
class Features:
    """Capabilities of the installed PEFT/transformers/torch, detected rather than version-checked."""

    prefix_init_weights: bool  # PrefixTuningConfig.init_weights ("zero" init; absent from older releases)
    cuda: bool
    sdpa: bool


@cache
def features() -> Features:
    import torch
    from peft import PrefixTuningConfig

    fields = {f.name for f in dataclasses.fields(PrefixTuningConfig)}
    return Features(
        prefix_init_weights="init_weights" in fields,
        cuda=torch.cuda.is_available(),
        sdpa=hasattr(torch.nn.functional, "scaled_dot_product_attention"),
    )
