"""The bodies of the properties declared in prefixcheck/properties.py, by what they look at.

Each body goes through its property's steps and checks its claims on an `Example`
(prefixcheck/example.py), registered here by name with `@body(NAME)`:

- `saved`: what PEFT writes (saved-shapes, config-roundtrip, resave-identical);
- `outputs`: what a reloaded adapter computes (reload-equality, prefix-acts, trainable-reload,
  multi-adapter, dtype-roundtrip, cuda-roundtrip, cpu-cuda-transfer);
- `generation`: generate() (generate-first-step, generate-roundtrip, generate-paths);
- `inputs`: every input path (input-paths);
- `training`: Trainer checkpoints (trainer-best-model, trainer-best-workaround, trainer-resume);
- `common`: the steps several bodies share.

Like the engine they drive, they need only torch, transformers and PEFT: a reproduction script
carries the group its property's body is in (prefixcheck/repro.py), so the script and the suite
run the same check. `load_all()` imports every group (the suite's runner does, once).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .. import properties

GROUPS = ("saved", "outputs", "generation", "inputs", "training")
BODIES: dict[str, Callable[..., None]] = {}


def body(name: str):
    """Register the decorated function as the body of property `name` (which must be declared)."""
    prop = properties.get(name)

    def register(fn):
        BODIES[prop.name] = fn
        return fn

    return register


def load_all() -> dict[str, Callable[..., None]]:
    """Every group imported: the bodies by property name. A declared property without a body is a
    bug here, and says so."""
    for group in GROUPS:
        importlib.import_module(f"{__name__}.{group}")
    missing = set(properties.NAMES) - set(BODIES)
    if missing:
        raise RuntimeError(f"properties without a body in prefixcheck.checks: {sorted(missing)}")
    return BODIES
