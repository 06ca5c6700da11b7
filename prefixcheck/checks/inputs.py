"""Every input path: equivalent ways of feeding the reloaded adapter model compute the same outputs.

ids vs embeddings, no mask vs an all-ones mask, explicit default positions vs none, labels or not,
a right-padded row vs the same row alone, and the same row left-padded with the positions
generate() gives it. `InputPaths` holds what the claims share; each claim is one method.
"""

from __future__ import annotations

import inspect

import torch

from .. import architectures, compare, engine, methods, mismatch
from ..compare import BITWISE, assert_equal
from . import body, common


def _explicit_default_positions(base_model, batch) -> torch.Tensor | None:
    """The position_ids that, passed explicitly, make the plain base model compute bitwise what it
    computes without them: arange(seq) for most families, padding_idx + 1 + arange(seq) for
    RoBERTa-style embeddings. None when the model's forward() takes no position_ids."""
    if "position_ids" not in inspect.signature(base_model.forward).parameters:
        return None
    want = engine.logits(base_model, batch)
    rows, seq = batch["input_ids"].shape
    pad = base_model.config.pad_token_id
    for start in dict.fromkeys([0, *([pad + 1] if pad is not None else [])]):
        # engine.logits passes each call a copy: some models shift position_ids in place
        positions = torch.arange(start, start + seq, device=batch["input_ids"].device).repeat(rows, 1)
        if torch.equal(engine.logits(base_model, {**batch, "position_ids": positions}), want):
            return positions
    raise mismatch.Inconclusive("no explicit position_ids reproduce the base model's own default positions")


def _left_padded(batch, num_padded: int) -> dict[str, torch.Tensor]:
    """The batch with its right-padded last row turned left-padded: the same tokens, the pads first."""
    out = dict(batch)
    for k in ("input_ids", "attention_mask"):
        out[k] = batch[k].clone()
        out[k][-1] = batch[k][-1].roll(num_padded)
    return out


def _left_padding_positions(case, base_model, left, default) -> dict[str, torch.Tensor]:
    """What a caller passes with a left-padded batch so that each row's real tokens take the
    positions they take alone: position_ids counted from the first real token (mask.cumsum(-1) - 1,
    as generate() does), from where the model's own default counts (0, or padding_idx + 1 for
    RoBERTa); nothing where forward() takes no position_ids and positions are relative, ALiBi (from
    the mask) or none. Inconclusive where it takes none and counts rotary or absolute positions from
    the first token, pads included: no caller can give the row its own positions (RoFormer, Falcon's
    classification heads). A tiny random base model barely feels rotary positions, so this is
    decided from the family, not measured on the base model. `default`: the unpadded rows'
    explicit default positions (_explicit_default_positions), None where forward() takes none."""
    if default is None:
        kind = architectures.blueprint(case).positions
        if kind in ("rotary", "absolute"):
            raise mismatch.Inconclusive(
                f"{type(base_model).__name__}.forward() takes no position_ids and its {kind} positions count "
                "from the first token, pads included: a left-padded row cannot be given its own positions"
            )
        return {}
    counted = (left["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
    return {"position_ids": counted + default[0, 0]}


class InputPaths:
    """The reloaded model, its batch and the base model's outputs, shared by the claims of one
    example; what two claims both need is computed by the first that asks (`once`: forward passes
    are most of the cost)."""

    def __init__(self, case, trained, model, ids, base) -> None:
        self.case, self.trained, self.model, self.ids, self.base = case, trained, model, ids, base
        self.batch = engine.inputs_only(trained.batch)
        self.base_model = engine.pristine_base(case)
        self.unpadded = trained.batch["attention_mask"].bool().all(dim=1)
        self.real = case.recipe.seq_len - case.recipe.num_padded
        self.alone = {
            k: v[-1:, : self.real] if k in ("input_ids", "attention_mask") else v[-1:] for k, v in self.batch.items()
        }
        self.per_position = case.task in ("CAUSAL_LM", "TOKEN_CLS")  # one output per input position: the real ones
        self.shared: dict[str, torch.Tensor | None] = {}

    def once(self, name, compute):
        if name not in self.shared:
            self.shared[name] = compute()
        return self.shared[name]

    def default_positions(self):
        return self.once(
            "default positions",
            lambda: _explicit_default_positions(self.base_model, common.rows(self.batch, self.unpadded)),
        )

    def alone_logits(self, m, name):
        return self.once(name, lambda: engine.logits(m, self.alone))

    def embeds_equal_ids(self):
        rows = self.unpadded  # a padded row may take its positions from the pad tokens in the ids (RoBERTa)
        fed = {k: v for k, v in self.batch.items() if k != "input_ids"}
        got = engine.logits(self.model, {**fed, "inputs_embeds": engine.embed(self.model, self.batch["input_ids"])})
        assert_equal(got[rows], self.ids[rows], BITWISE, "inputs_embeds vs input_ids logits", base=self.base[rows])

    def no_mask_equals_ones(self):
        sub = common.rows(self.batch, self.unpadded)
        with_ones = engine.logits(self.model, sub)
        without = engine.logits(self.model, {k: v for k, v in sub.items() if k != "attention_mask"})
        tol = compare.tolerance(compare.BATCH_SHAPE, self.case.dtype, self.case.device)
        assert_equal(without, with_ones, tol, "no attention_mask vs an all-ones mask", base=self.base[self.unpadded])

    def explicit_positions_equal_none(self):
        sub = common.rows(self.batch, self.unpadded)
        positions = self.default_positions()
        fed = (
            positions
            if positions is not None
            else torch.arange(sub["input_ids"].shape[1]).repeat(len(sub["input_ids"]), 1)
        )
        try:
            got = engine.logits(self.model, {**sub, "position_ids": fed})
        except TypeError as exc:
            if positions is None and "position_ids" in str(exc):
                return  # refused loudly, as the base model refuses it
            raise
        assert_equal(
            got,
            engine.logits(self.model, sub),
            BITWISE,
            "explicit default position_ids vs none",
            base=self.base[self.unpadded],
        )

    def labels_leave_logits(self):
        self.model.eval()
        with torch.no_grad():
            batch = self.trained.batch
            out = self.model(**engine.fed_to(self.model, batch))
        if out.loss is None or not torch.isfinite(out.loss):
            raise mismatch.NonFinite(f"forward with labels gives loss {out.loss}")
        got = engine.input_logits(self.model, batch, out.logits).float().cpu()
        assert_equal(got, self.ids, BITWISE, "logits with labels vs without", base=self.base)

    def padded_row_equals_alone(self):
        case = self.case
        if case.recipe.padding_side != "right" or not case.recipe.num_padded:
            raise ValueError("input-paths needs a right-padded row (draw cases with padded=True, padding_side='right')")
        got = self.alone_logits(self.model, "alone")
        want, base_in_batch = self.ids[-1:], self.base[-1:]
        if self.per_position:
            want, base_in_batch = want[:, : self.real], base_in_batch[:, : self.real]
        base_alone = self.alone_logits(self.base_model, "base alone")
        # the same comparison without the adapter: what padding alone moves in this dtype
        tol = compare.batch_shape_tolerance(case.dtype, case.device, compare.max_diff(base_in_batch, base_alone))
        assert_equal(got, want, tol, "the right-padded row in its batch vs alone", base=base_alone)

    def last_row(self, logits):
        return logits[-1:, -self.real :] if self.per_position else logits[-1:]

    def left_padded_row_equals_alone(self):
        case = self.case
        if case.task == "SEQ_CLS" and architectures.blueprint(case).encoder_style:
            # decided from the family: a tiny random head barely feels which token it pools (measured:
            # CamemBERT in bf16 within the gate on the base model, 8.7e-2 apart with the prefix)
            raise mismatch.Inconclusive("this family's classification pools the first token, a pad when left-padded")
        if (
            methods.get(case.prefix.method).enters == methods.EMBEDDING
            and architectures.blueprint(case).positions != "none"
        ):
            # PEFT puts an embedding method's prompt before the padding and drops position_ids
            # (peft_model.py _adjust_prompt_learning_kwargs: "Position ids are not supported ...
            # Ignoring position ids"): the row's tokens move away from the prompt by the pad count
            raise mismatch.Inconclusive(
                f"{case.prefix.method} puts its prompt before the padding and PEFT ignores position_ids: a "
                "left-padded row cannot be given its own positions"
            )
        left = _left_padded(self.batch, case.recipe.num_padded)
        left = {**left, **_left_padding_positions(case, self.base_model, left, self.default_positions())}
        base_alone = self.alone_logits(self.base_model, "base alone")
        # the same comparison without the adapter: what left padding alone moves (an encoder's first
        # token pooled, absolute positions the model cannot be given), judged only where that is small
        base_diff = compare.max_diff(self.last_row(engine.logits(self.base_model, left)), base_alone)
        tol = compare.batch_shape_tolerance(case.dtype, case.device, base_diff)
        how = "with position_ids from its first real token" if "position_ids" in left else "without position_ids"
        got = self.last_row(engine.logits(self.model, left))
        # misplaced positions can leave the row nearer the base model than the prefixed one (PEFT < 0.19
        # drops position_ids): that is not the prefix being ignored, so every mismatch is beyond-tolerance
        assert_equal(got, self.alone_logits(self.model, "alone"), tol, f"the left-padded row ({how}) vs alone",
                     base=base_alone, follows_base_is_ignored=False)  # fmt: skip


@body("input-paths")
def input_paths(ex, case):
    trained = common.trained(ex, case)
    with engine.scratch() as d:
        _, model = common.saved_and_loaded(ex, case, trained, d)
    batch = engine.inputs_only(trained.batch)
    ids = ex.step("forward", engine.logits, model, batch)
    base = common.base(ex, case, batch)
    paths = InputPaths(case, trained, model, ids, base)
    ex.check("embeds-equal-ids", paths.embeds_equal_ids)
    ex.check("no-mask-equals-ones", paths.no_mask_equals_ones)
    ex.check("explicit-positions-equal-none", paths.explicit_positions_equal_none)
    ex.check("labels-leave-logits", paths.labels_leave_logits)
    ex.check("padded-row-equals-alone", paths.padded_row_equals_alone)
    ex.check("left-padded-row-equals-alone", paths.left_padded_row_equals_alone)
