"""Judging artifacts under this cell's versions, inside its environment (`python -m matrix consume`).
Imports torch, transformers and PEFT once, at import; the CLI imports this module only inside a cell.

Verdicts (one per producer x consumer x case; prefixcheck.verdicts' row words):
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
import time
import traceback
from pathlib import Path

import torch
from peft import PeftConfig

from prefixcheck import architectures, compare, engine, mismatch, registry
from prefixcheck.artifacts import ArtifactError, load_json, load_tensors
from prefixcheck.case import Case, CaseError
from prefixcheck.verdicts import (
    BASE_MISMATCH,
    FAIL,
    INCONCLUSIVE,
    INVALID_ARTIFACT,
    KNOWN_ISSUE,
    LOAD_ERROR,
    PASS,
    UNSUPPORTED,
)
from prefixcheck.versions import features, installed

from . import manifest


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


class _Decided(Exception):
    """The artifact's verdict is reached before the end of the checks."""

    def __init__(self, verdict: str, detail: str = "", issue: str | None = None) -> None:
        super().__init__(verdict)
        self.verdict, self.detail, self.issue = verdict, detail, issue


def consume_one(folder: Path, producer: str, device: str = "cpu") -> Result:
    """The verdict for one artifact folder under the installed versions, evaluated on `device`
    (a CUDA cell reads CPU artifacts and the reverse; see the module docstring)."""
    try:
        meta = manifest.verify(folder)
        case = Case.from_dict(meta["case"])
    except (ArtifactError, CaseError, KeyError) as exc:
        return Result(producer, folder.name, INVALID_ARTIFACT, str(exc))
    result = Result(
        producer, folder.name, PASS, arch=case.model.arch, task=case.task, projection=case.prefix.prefix_projection
    )
    try:
        why = _unsupported(case, device)
        if why:
            raise _Decided(UNSUPPORTED, why)
        _Judging(folder, meta, case, device).run()
    except _Decided as decided:
        result.verdict, result.detail, result.issue = decided.verdict, decided.detail[:500], decided.issue
        result.reference = registry.default().by_id(decided.issue).reference if decided.issue else ""
    return result


def _unsupported(case: Case, device: str) -> str | None:
    """Why this cell cannot build the case at all, or None."""
    try:
        arch = architectures.get(case.model.arch)
    except KeyError as exc:
        return str(exc)
    if not arch.available() or case.task not in arch.available_tasks():
        return f"this transformers has no {case.model.arch} {case.task} model"
    if case.prefix.init_weights is not None and not features().prefix_init_weights:
        return "this PEFT has no PrefixTuningConfig.init_weights"
    if device == "cuda" and not features().cuda:
        return "this cell is a CUDA cell but has no CUDA device"
    return None


class _Judging:
    """One artifact judged here: the base-model control, the load, then config, table, outputs and
    generate(), each at the property step or claim of the suite it corresponds to (`place`), so a
    failure is judged by the registry as the suite judges it there."""

    def __init__(self, folder: Path, meta: dict, case: Case, device: str) -> None:
        self.folder, self.meta = folder, meta
        same_versions = {k: v for k, v in meta["versions"].items() if k != "python"} == {
            k: v for k, v in installed().items() if k != "python"
        }
        made_on = case.device
        self.case = case.replace(device=device)  # evaluated here, on this cell's device
        self.kind = compare.SAME if same_versions else compare.CROSS_VERSION
        self.tol_device = device
        if made_on != device:  # CPU <-> CUDA: the device tolerance (it is wider than cross-version)
            self.kind, self.tol_device = compare.DEVICE, "cuda"
        self.tensors = load_tensors(folder / "tensors.safetensors")
        wanted = ("input_ids", "attention_mask", "decoder_input_ids")
        self.batch = {k: self.tensors[k].to(device) for k in wanted if k in self.tensors}
        self.mask = self.tensors["attention_mask"].bool()

    def tolerance(self) -> compare.Tolerance:
        return compare.tolerance(self.kind, self.case.dtype, self.tol_device)

    def real(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-token logits at real (unpadded) positions only: what padded positions compute is
        arbitrary and changes between transformers releases."""
        if logits.dim() == 3 and tuple(logits.shape[:2]) == tuple(self.mask.shape):
            return logits[self.mask]
        return logits

    def known(self, prop: str, point: str, exc: BaseException) -> str | None:
        """The suite's own judgement (the registry's judge) at the property step or claim this
        consume step corresponds to."""
        return registry.default().judge(prop, point, self.case, exc).issue_id

    def run(self) -> None:
        base, base_logits = self.base_control()
        try:  # load the adapter exactly as its producer saved it
            model = engine.load(self.case, self.folder / "adapter", base=base)
        except Exception as exc:
            issue = self.known("reload-equality", "load", exc)
            raise _Decided(KNOWN_ISSUE if issue else LOAD_ERROR, f"{type(exc).__name__}: {exc}", issue) from exc
        self.checks(model, base_logits)

    def base_control(self) -> tuple[torch.nn.Module, torch.Tensor]:
        """The base model alone must compute what it computed for the producer (else not PEFT's doing)."""
        try:
            base = engine.build_base(self.case)
            saved = load_tensors(self.folder / "base" / "model.safetensors")
            missing, unexpected = base.load_state_dict(saved, strict=False)
            params = {n for n, _ in base.named_parameters()}
            tied = {n for n in missing if n.endswith(("lm_head.weight", "embed_tokens.weight", "decoder.weight"))}
            if set(missing) & params - tied:
                raise _Decided(
                    BASE_MISMATCH, f"base weights missing from the artifact: {sorted(set(missing) & params)[:5]}"
                )
            base.eval()
            base_logits = engine.logits(base, self.batch)
            compare.assert_equal(
                self.real(base_logits),
                self.real(self.tensors["base_logits"]),
                self.tolerance(),
                "base model logits (control)",
            )
        except (AssertionError, RuntimeError, ValueError) as exc:
            raise _Decided(BASE_MISMATCH, f"{type(exc).__name__}: {exc}") from exc
        return base, base_logits

    def checks(self, model, base_logits: torch.Tensor) -> None:
        """Config, shapes, outputs, generate; `place` is the suite's property:point each one is."""
        place = ("config-roundtrip", "loaded-equals-saved")
        try:
            self.config_matches(model)
            place = ("saved-shapes", "table-shape")
            loaded, table = self.tables(model)
            if tuple(loaded.shape) != tuple(table.shape):
                raise mismatch.ShapeMismatch(
                    f"prefix table shape: saved {tuple(table.shape)}, loaded {tuple(loaded.shape)}"
                )
            # loading copies the saved table into the model: bitwise whatever the versions, unless the
            # consumer casts it (then the cross-version tolerance of the case's dtype)
            place = ("resave-identical", "tensors-identical")  # the loaded table is what a resave writes
            kind = compare.SAME if loaded.dtype == table.dtype else self.kind
            table_tol = compare.tolerance(kind, self.case.dtype, self.tol_device)
            compare.assert_equal(loaded.cpu(), table, table_tol, "loaded prefix table")
            place = ("reload-equality", "reloaded-equals-trained")
            # with the base model's logits: outputs that follow the base are PrefixIgnored, and a pass
            # where the producer's prefix barely moved the outputs is inconclusive, never a pass
            compare.assert_equal(
                self.real(engine.logits(model, self.batch)),
                self.real(self.tensors["logits"]),
                self.tolerance(),
                "adapter logits",
                base=self.real(base_logits),
            )
            if "generated" in self.tensors:
                place = ("generate-roundtrip", "tokens-survive")
                self.generates_the_same(model)
        except mismatch.Inconclusive as exc:
            raise _Decided(INCONCLUSIVE, str(exc)) from exc
        except Exception as exc:
            issue = self.known(*place, exc) or self.generate_known_elsewhere(place)
            name = KNOWN_ISSUE if issue else (FAIL if isinstance(exc, AssertionError) else LOAD_ERROR)
            raise _Decided(name, f"{type(exc).__name__}: {exc}" if name != FAIL else str(exc), issue) from exc

    def config_matches(self, model) -> None:
        saved_cfg = load_json(self.folder / "adapter" / "adapter_config.json")
        live = model.peft_config["default"].to_dict()
        for key in ("num_virtual_tokens", "num_layers", "token_dim", "num_attention_heads", "prefix_projection"):
            if key in saved_cfg and saved_cfg[key] != live.get(key):
                raise mismatch.ValueChanged(f"config {key}: saved {saved_cfg[key]!r}, loaded {live.get(key)!r}")
        PeftConfig.from_pretrained(str(self.folder / "adapter"))

    def tables(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        """(the table the model holds after loading, the table the producer saved)."""
        table = load_tensors(self.folder / "adapter" / "adapter_model.safetensors")["prompt_embeddings"]
        return model.prompt_encoder["default"].embedding.weight.detach(), table

    def generates_the_same(self, model) -> None:
        got = engine.generate(model, self.case, self.batch).sequences
        if not torch.equal(got, self.tensors["generated"]):
            raise mismatch.ValueChanged(
                f"generate(): {got.tolist()} != producer's {self.tensors['generated'].tolist()}"
            )

    def generate_known_elsewhere(self, place: tuple[str, str]) -> str | None:
        """A generate() that drops or misplaces the prefix, on either side, makes the ids differ: the
        entry the suite's generate-first-step has for this case, here or under the producer's versions."""
        if place[0] != "generate-roundtrip":
            return None
        for versions in (installed(), self.meta["versions"]):
            entries = registry.default().matching("generate-first-step", self.case, versions)
            if entries:
                return entries[0].id
        return None


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
    judged_by = manifest.code_digest()  # verdicts depend on the engine, registry, tolerances and this module
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
                            LOAD_ERROR,
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
