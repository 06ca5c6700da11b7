"""What runs inside one cell's environment: produce artifacts, consume everyone's.
Imports torch, transformers and peft once, at import; `python -m matrix report` never imports it.

Verdicts (one per producer x consumer x case):
  pass             everything agrees
  fail             the adapter loads but config, the saved table, shapes, outputs or generate() differ,
                   or its outputs follow the base model (the prefix is ignored; detail says how)
  load-error       loading raised (the exception)
  known-issue      the consumer fails the way one of its registry entries says (the entry id)
  unsupported      the consumer lacks the architecture, the task head or an option the case uses
  base-mismatch    the base-model control failed: the base alone computes differently (not PEFT's fault)
  invalid-artifact the artifact folder cannot be trusted (the reason)
  inconclusive     outputs agree, but the producer's prefix moved them too little to tell an applied
                   prefix from an ignored one within the tolerance
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import traceback
from pathlib import Path

import torch
from hypothesis import Phase, given, settings
from peft import PeftConfig
from safetensors.torch import save_file

from prefixcheck import architectures, compare, engine, known_issues
from prefixcheck.artifacts import ArtifactError, load_json, load_tensors
from prefixcheck.case import AttentionLayout, Case, CaseError, ModelSpec, PrefixSpec, Recipe
from prefixcheck.versions import features, installed
from strategies import cases

from . import manifest
from .cells import pinned_projection

GENERATIVE = ("CAUSAL_LM", "SEQ_2_SEQ_LM")
PINNED_LAYOUTS = {  # family -> (hidden, heads, kv_heads, head_dim): GQA where the family can express it
    "gqa": (16, 4, 2, 4),
    "explicit": (16, 4, 2, 8),
    "mqa": (16, 4, 1, 4),
    "mha": (8, 2, 2, 4),
    "inner": (8, 2, 2, 4),
}


def code_digest() -> str:
    """One hash over the code that makes and judges artifacts (the prefixcheck engine, registry,
    tolerances, architectures; this module and the manifest): a verdict or an artifact made by
    other code is redone, never reused."""
    import prefixcheck

    files = sorted(Path(prefixcheck.__file__).parent.rglob("*.py")) + sorted(
        Path(prefixcheck.__file__).parent.rglob("*.toml")
    )
    files += [Path(__file__), Path(manifest.__file__)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


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
        hidden, heads, kv, head_dim = PINNED_LAYOUTS[arch.family]
        if arch.family == "mha" and arch.head_dims[0] > 4:  # GPT-NeoX wants head_dim >= 8
            hidden, head_dim = 16, 8
        layout = AttentionLayout(hidden, heads, kv, head_dim)
        for task in arch.available_tasks():
            projections = (False, True) if producer is None else (pinned_projection(producer, arch.name, task),)
            for projection in projections:
                out.append(
                    Case(
                        model=ModelSpec(arch.name, 2, layout),
                        task=task,
                        prefix=PrefixSpec(num_virtual_tokens=3, prefix_projection=projection),
                        recipe=Recipe(steps=2, learning_rate=5e-2, batch_size=2, seq_len=6, num_padded=2),
                    )
                )
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
    made_by = code_digest()
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


@dataclasses.dataclass
class Result:
    producer: str
    case: str
    verdict: str
    detail: str = ""
    issue: str | None = None
    arch: str = ""
    task: str = ""
    projection: bool = False
    reference: str = ""  # the known issue's first upstream reference, if it has one


def consume_one(folder: Path, producer: str, device: str = "cpu") -> Result:
    """The verdict for one artifact folder under the installed versions, evaluated on `device`
    (a CUDA cell reads CPU artifacts and the reverse; see the module docstring)."""

    try:
        meta = manifest.verify(folder)
        case = Case.from_dict(meta["case"])
    except (ArtifactError, CaseError, KeyError) as exc:
        return Result(producer, folder.name, "invalid-artifact", str(exc))
    result = Result(
        producer, folder.name, "pass", arch=case.model.arch, task=case.task, projection=case.prefix.prefix_projection
    )

    def verdict(name: str, detail: str = "", issue: str | None = None) -> Result:
        result.verdict, result.detail, result.issue = name, detail[:500], issue
        result.reference = known_issues.by_id(issue).reference if issue else ""
        return result

    try:
        arch = architectures.get(case.model.arch)
    except KeyError as exc:
        return verdict("unsupported", str(exc))
    if not arch.available() or case.task not in arch.available_tasks():
        return verdict("unsupported", f"this transformers has no {case.model.arch} {case.task} model")
    if case.prefix.init_weights is not None and not features().prefix_init_weights:
        return verdict("unsupported", "this PEFT has no PrefixTuningConfig.init_weights")
    if device == "cuda" and not features().cuda:
        return verdict("unsupported", "this cell is a CUDA cell but has no CUDA device")

    same_versions = {k: v for k, v in meta["versions"].items() if k != "python"} == {
        k: v for k, v in installed().items() if k != "python"
    }
    made_on = case.device
    case = case.replace(device=device)  # evaluated here, on this cell's device
    kind = compare.SAME if same_versions else compare.CROSS_VERSION
    tol_device = case.device
    if made_on != device:  # CPU <-> CUDA: the device tolerance (it is wider than cross-version)
        kind, tol_device = compare.DEVICE, "cuda"
    tensors = load_tensors(folder / "tensors.safetensors")
    batch = {k: tensors[k].to(device) for k in ("input_ids", "attention_mask", "decoder_input_ids") if k in tensors}
    mask = tensors["attention_mask"].bool()

    def real(logits: torch.Tensor) -> torch.Tensor:
        """Per-token logits at real (unpadded) positions only: what padded positions compute is
        arbitrary and changes between transformers releases."""
        if logits.dim() == 3 and tuple(logits.shape[:2]) == tuple(mask.shape):
            return logits[mask]
        return logits

    # 1. the base-model control: the base alone must compute what it computed for the producer
    try:
        base = engine.build_base(case)
        saved = load_tensors(folder / "base" / "model.safetensors")
        missing, unexpected = base.load_state_dict(saved, strict=False)
        params = {n for n, _ in base.named_parameters()}
        tied = {n for n in missing if n.endswith(("lm_head.weight", "embed_tokens.weight", "decoder.weight"))}
        if set(missing) & params - tied:
            return verdict(
                "base-mismatch", f"base weights missing from the artifact: {sorted(set(missing) & params)[:5]}"
            )
        base.eval()
        base_logits = engine.logits(base, batch)
        compare.assert_equal(
            real(base_logits),
            real(tensors["base_logits"]),
            compare.tolerance(kind, case.dtype, tol_device),
            "base model logits (control)",
        )
    except (AssertionError, RuntimeError, ValueError) as exc:
        return verdict("base-mismatch", f"{type(exc).__name__}: {exc}")

    def known(prop: str, point: str, exc: BaseException) -> str | None:
        """The suite's own judgement (known_issues.judge) at the property step or claim this
        consume step corresponds to."""
        judgement = known_issues.judge(prop, point, case, exc)
        return judgement.issue.id if judgement.known else None

    # 2. load the adapter exactly as its producer saved it
    try:
        model = engine.load(case, folder / "adapter", base=base)
    except Exception as exc:
        issue = known("reload-equality", "load", exc)
        return verdict("known-issue" if issue else "load-error", f"{type(exc).__name__}: {exc}", issue)

    # 3. config, shapes, outputs, generate; `place` is the suite's property:point each one is
    place = ("config-roundtrip", "loaded-equals-saved")
    try:
        saved_cfg = load_json(folder / "adapter" / "adapter_config.json")
        live = model.peft_config["default"].to_dict()
        for key in ("num_virtual_tokens", "num_layers", "token_dim", "num_attention_heads", "prefix_projection"):
            if key in saved_cfg and saved_cfg[key] != live.get(key):
                raise compare.ValueChanged(f"config {key}: saved {saved_cfg[key]!r}, loaded {live.get(key)!r}")
        PeftConfig.from_pretrained(str(folder / "adapter"))
        table = load_tensors(folder / "adapter" / "adapter_model.safetensors")["prompt_embeddings"]
        loaded = model.prompt_encoder["default"].embedding.weight.detach()
        place = ("saved-shapes", "table-shape")
        if tuple(loaded.shape) != tuple(table.shape):
            raise compare.ShapeMismatch(f"prefix table shape: saved {tuple(table.shape)}, loaded {tuple(loaded.shape)}")
        # loading copies the saved table into the model: bitwise whatever the versions, unless the
        # consumer casts it (then the cross-version tolerance of the case's dtype)
        place = ("resave-identical", "tensors-identical")  # the loaded table is what a resave writes
        table_tol = compare.tolerance(compare.SAME if loaded.dtype == table.dtype else kind, case.dtype, tol_device)
        compare.assert_equal(loaded.cpu(), table, table_tol, "loaded prefix table")
        place = ("reload-equality", "reloaded-equals-trained")
        # with the base model's logits: outputs that follow the base are PrefixIgnored, and a pass
        # where the producer's prefix barely moved the outputs is inconclusive, never a pass
        compare.assert_equal(
            real(engine.logits(model, batch)),
            real(tensors["logits"]),
            compare.tolerance(kind, case.dtype, tol_device),
            "adapter logits",
            base=real(base_logits),
        )
        if "generated" in tensors:
            place = ("generate-roundtrip", "tokens-survive")
            got = engine.generate(model, case, batch).sequences
            if not torch.equal(got, tensors["generated"]):
                raise compare.ValueChanged(f"generate(): {got.tolist()} != producer's {tensors['generated'].tolist()}")
    except compare.Inconclusive as exc:
        return verdict("inconclusive", str(exc))
    except Exception as exc:
        issue = known(*place, exc)
        if issue is None and place[0] == "generate-roundtrip":
            # a generate() that drops or misplaces the prefix, on either side, makes the ids differ
            for versions in (installed(), meta["versions"]):
                entries = known_issues.matching("generate-first-step", case, versions)
                if entries:
                    issue = entries[0].id
                    break
        name = "known-issue" if issue else ("fail" if isinstance(exc, AssertionError) else "load-error")
        return verdict(name, f"{type(exc).__name__}: {exc}" if name != "fail" else str(exc), issue)
    return result


def consume(artifacts: Path, out: Path, device: str = "cpu", producers: tuple[str, ...] | None = None) -> dict:
    """Verdicts for every producer's artifacts under `artifacts` (or those of `producers`);
    written to `out` (JSON)."""

    folders = {
        p.name: sorted(d for d in p.iterdir() if d.is_dir())
        for p in sorted(artifacts.iterdir())
        if p.is_dir() and (producers is None or p.name in producers)
    }
    # every input file is checked against its sha256 on every run, resumed or not: a file damaged
    # after the last run must never keep that run's verdict
    checked = {}
    for folder in (f for fs in folders.values() for f in fs):
        try:
            manifest.verify(folder)
            checked[f"{folder.parent.name}/{folder.name}"] = "ok"
        except ArtifactError as exc:
            checked[f"{folder.parent.name}/{folder.name}"] = str(exc)
    digest = hashlib.sha256(
        (manifest.digest_of([f for fs in folders.values() for f in fs]) + json.dumps(checked, sort_keys=True)).encode()
    ).hexdigest()
    judged_by = code_digest()  # verdicts depend on the engine, registry, tolerances and this module
    if out.is_file():
        previous = json.loads(out.read_text())
        same = (
            previous.get("inputs_digest"),
            previous.get("versions"),
            previous.get("device"),
            previous.get("judged_by"),
        )
        if same == (digest, installed(), device, judged_by):
            return previous  # resume: nothing changed since the last consume
    start = time.perf_counter()
    rows = []
    for producer, case_folders in folders.items():
        for folder in case_folders:
            try:
                rows.append(dataclasses.asdict(consume_one(folder, producer, device)))
            except Exception as exc:  # never lose the grid to one bad case
                rows.append(
                    dataclasses.asdict(
                        Result(
                            producer,
                            folder.name,
                            "load-error",
                            "".join(traceback.format_exception_only(exc)).strip()[:500],
                        )
                    )
                )
    report = {
        "versions": installed(),
        "device": device,
        "inputs_digest": digest,
        "judged_by": judged_by,
        "seconds": time.perf_counter() - start,
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, sort_keys=True))
    return report
