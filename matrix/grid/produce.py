"""Making a producer cell's artifacts, inside that cell's environment (`python -m matrix produce`).

One artifact folder per case: the pinned cases (one per architecture x task,
prefixcheck.pinned.ARTIFACTS, the projection alternating by producer: cells.pinned_projection)
and `--drawn` derandomized Hypothesis cases. A folder holds the base model (save_pretrained,
safetensors), the adapter exactly as this PEFT saved it, the inputs and reference outputs
(logits, base logits, generated ids) and a manifest (matrix.grid.manifest). Imports torch,
transformers and PEFT once, at import; the CLI imports this module only inside a cell.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from hypothesis import Phase, given, settings
from safetensors.torch import save_file

from prefixcheck import architectures, engine, pinned
from prefixcheck.artifacts import ArtifactError
from prefixcheck.case import Case
from prefixcheck.versions import installed
from strategies import cases

from . import manifest
from .cells import pinned_projection

GENERATIVE = ("CAUSAL_LM", "SEQ_2_SEQ_LM")


def chosen_architectures() -> tuple:
    """The architectures the pinned cases cover: every curated one the installed transformers
    supports (artifacts cross versions, and the curated families exist in all of them), or
    those named in MATRIX_ARCHS (comma-separated; a quick rerun of one family, and the workflow
    self-tests' reduced form). A name this suite does not know is a one-line error."""
    available = architectures.available_architectures("curated")
    wanted = [n.strip() for n in os.environ.get("MATRIX_ARCHS", "").split(",") if n.strip()]
    if not wanted:
        return available
    known = {a.name for a in architectures.ARCHITECTURES}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(f"MATRIX_ARCHS names unknown architectures {unknown}; known: {sorted(known)}")
    return tuple(a for a in available if a.name in wanted)


def pinned_cases(producer: str | None = None):
    """Every architecture x task the installed transformers supports, at one tiny size; with
    `producer`, the one projection cells.pinned_projection() gives it, else both."""

    out = []
    for arch in chosen_architectures():
        for task in arch.available_tasks():
            projections = (False, True) if producer is None else (pinned_projection(producer, arch.name, task),)
            out += [pinned.case(arch, task, projection, pinned.ARTIFACTS) for projection in projections]
    return out


def drawn_cases(n: int):
    """n derandomized Hypothesis cases (fp32, CPU, default adapter name, curated families): the
    same list in every run."""
    if n <= 0:
        return []
    out = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None)
    # curated families only: they exist in every release (a discovered family is unsupported in
    # most other cells), and discovery in each cell's fresh environment costs minutes
    @given(case=cases(dtype="float32", device="cpu", adapter_name="default", families="curated"))
    def collect(case):
        out.append(case)

    collect()
    return out[:n]


def produce(out: Path, todo: list[Case], pinned: frozenset[str] = frozenset()) -> dict:
    """Write one artifact folder per case under `out`; skip folders that already verify.
    `pinned`: the keys of the pinned cases (recorded as the artifact's origin; the rest are drawn)."""

    out.mkdir(parents=True, exist_ok=True)
    made_by = manifest.code_digest()
    index = {"versions": installed(), "made_by": made_by, "written": 0, "reused": 0, "failed": {}}
    start = time.perf_counter()
    for case in todo:
        folder = out / case.key
        try:
            old = manifest.verify(folder)
            if (old.get("versions"), old.get("made_by")) == (installed(), made_by):
                index["reused"] += 1
                continue
        except ArtifactError:
            pass
        if folder.exists():  # made by other versions or code, or damaged: made again from scratch
            shutil.rmtree(folder)
        try:
            trained = engine.train_case(case)
            engine.save(trained.model, folder / "adapter")
            reloaded = engine.load(case, folder / "adapter")
            base = engine.build_base(case)
            base.save_pretrained(str(folder / "base"), safe_serialization=True)
            tensors = {k: v.contiguous() for k, v in trained.batch.items() if k != "labels"}
            tensors["logits"] = engine.logits(reloaded, trained.batch)
            tensors["base_logits"] = engine.logits(base, trained.batch)
            if case.task in GENERATIVE:
                tensors["generated"] = engine.generate(reloaded, case, trained.batch).sequences
            save_file({k: v.cpu() for k, v in tensors.items()}, str(folder / "tensors.safetensors"))
            for extra in folder.rglob("*"):  # e.g. PEFT's README.md model card: artifacts are safetensors/JSON only
                if extra.is_file() and extra.suffix not in (".json", ".safetensors"):
                    extra.unlink()
            manifest.write(
                folder,
                {
                    "versions": installed(),
                    "device": case.device,
                    "dtype": case.dtype,
                    "case": case.to_dict(),
                    "seeds": {"base": case.seed, "prefix": case.seed + 1, "data": case.seed + 2},
                    "torch_threads": torch.get_num_threads(),
                    "made_by": made_by,
                    "origin": "pinned" if case.key in pinned else "drawn",
                },
            )
            index["written"] += 1
        except Exception as exc:  # the producer itself hits a bug: no artifact, recorded with the reason
            index["failed"][case.key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            if folder.exists():
                shutil.rmtree(folder)
    index["seconds"] = time.perf_counter() - start
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    return index
