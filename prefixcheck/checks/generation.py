"""generate(): its first step follows the prefixed forward pass, it survives a reload, and every
way of generating (each step, a second call, beam search, inputs_embeds, no cache) agrees."""

from __future__ import annotations

import torch

from .. import compare, engine, mismatch
from ..compare import BITWISE, assert_equal, reload_tolerance
from . import body, common


def _generate_uses_prefix(ex, model, case, batch, first: torch.Tensor, rows, forward=None) -> None:
    """generate() depends on the prefix: put another table in the encoder and generate's first
    step must change wherever the forward pass changes by more than the generate tolerance.
    (Closer-to-the-prefixed-forward is not enough: a generate() that drops the prefix's keys and
    values but shifts positions by num_virtual_tokens also differs from the base model.)"""
    if forward is None:  # generate-first-step passes the forward pass it already ran
        forward = engine.next_token_logits(model, case, batch)[rows]
    with engine.another_prefix(model, case.prefix.adapter_name, case.seed):
        other = ex.step("generate", engine.generate, model, case, batch).first_step_logits[rows]
        other_forward = engine.next_token_logits(model, case, batch)[rows]
    tol = compare.tolerance(compare.GENERATE, case.dtype, case.device)
    if not torch.equal(other, first):
        return  # generate() follows the table
    # forward() must react to the table clearly for generate()'s indifference to mean anything
    moved, floor = compare.max_diff(other_forward, forward), compare.effect_floor(tol, forward)
    if moved <= floor:
        raise mismatch.Inconclusive(
            f"another prefix table moves the forward pass by only {moved:.3e} (judgeable above {floor:.3e})"
        )
    raise mismatch.PrefixIgnored(
        "generate() first step with another prefix table is bitwise the same, while the forward pass moves by "
        f"{compare.max_diff(other_forward, forward):.3e}: generate() does not use the prefix"
    )


@body("generate-first-step")
def generate_first_step(ex, case):
    trained = common.trained(ex, case)
    unpadded = trained.batch["attention_mask"].bool().all(dim=1)
    if not unpadded.any():
        raise ValueError("generate-first-step needs a row without padding (draw cases with min_batch=2)")
    first = ex.step("generate", engine.generate, trained.model, case, trained.batch).first_step_logits[unpadded]
    forward = ex.step("forward", engine.next_token_logits, trained.model, case, trained.batch)[unpadded]
    base = ex.step("base", engine.next_token_logits, engine.pristine_base(case), case, trained.batch)[unpadded]
    tol = compare.tolerance(compare.GENERATE, case.dtype, case.device)
    ex.check("uses-prefix", _generate_uses_prefix, ex, trained.model, case, trained.batch, first, unpadded, forward)
    ex.check(
        "matches-forward",
        assert_equal,
        first,
        forward,
        tol,
        "generate() first-step logits vs a forward pass with the prefix",
        base=base,
    )


@body("generate-roundtrip")
def generate_roundtrip(ex, case):
    trained = common.trained(ex, case)
    before = ex.step("generate", engine.generate, trained.model, case, trained.batch)
    every = slice(None)
    ex.check(
        "uses-prefix", _generate_uses_prefix, ex, trained.model, case, trained.batch, before.first_step_logits, every
    )
    # only its first step is compared: one new token (its cache is sized for one, which may round
    # differently, so it serves as the prefix-effect reference only, never in a bitwise check)
    base = ex.step("base", engine.generate, engine.build_base(case), case, trained.batch, 1).first_step_logits
    with engine.scratch() as d:
        _, reloaded = common.saved_and_loaded(ex, case, trained, d)
    after = ex.step("generate", engine.generate, reloaded, case, trained.batch)
    tol = reload_tolerance(case.prefix.encoded, case.dtype, case.device)
    ex.check(
        "first-step-survives",
        assert_equal,
        after.first_step_logits,
        before.first_step_logits,
        tol,
        "generate() first step after reload vs before save",
        base=base,
    )

    def tokens_equal():
        if not torch.equal(after.sequences, before.sequences):
            raise mismatch.ValueChanged(
                f"generate() after reload {after.sequences.tolist()} != before save {before.sequences.tolist()}"
            )

    ex.check("tokens-survive", tokens_equal)


@body("generate-paths")
def generate_paths(ex, case):
    trained = common.trained(ex, case)
    with engine.scratch() as d:
        _, model = common.saved_and_loaded(ex, case, trained, d)
    batch = trained.batch
    unpadded = batch["attention_mask"].bool().all(dim=1)
    if not unpadded.any():
        raise ValueError("generate-paths needs a row without padding (draw cases with min_batch=2)")
    greedy = ex.step("generate", engine.generate, model, case, batch)
    new = engine.new_tokens_of(greedy)
    forward = ex.step("forward", engine.continuation_logits, model, case, batch, new)
    base_model = engine.pristine_base(case)
    base = ex.step("base", engine.continuation_logits, base_model, case, batch, new)
    gen_tol = compare.tolerance(compare.GENERATE, case.dtype, case.device)

    def every_step():
        for k, step in enumerate(greedy.step_logits):
            assert_equal(step[unpadded], forward[unpadded, k], gen_tol,
                         f"generate() step {k + 1} vs a forward pass over the prompt and {k} generated tokens",
                         base=base[unpadded, k])  # fmt: skip

    def second_call():
        again = engine.generate(model, case, batch)
        for k, (a, b) in enumerate(zip(again.step_logits, greedy.step_logits, strict=True)):
            assert_equal(a, b, BITWISE, f"second generate() call, step {k + 1}, vs the first")
        if not torch.equal(again.sequences, greedy.sequences):
            raise mismatch.ValueChanged(
                f"a second generate() gives {again.sequences.tolist()} after {greedy.sequences.tolist()}"
            )

    def beam_matches_forward():
        beam = engine.generate(model, case, batch, num_beams=2)
        tokens = engine.new_tokens_of(beam)[unpadded]
        sub = common.rows(batch, unpadded)
        scored = torch.log_softmax(engine.continuation_logits(model, case, sub, tokens)[:, :-1].float(), dim=-1)
        summed = scored.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(-1)
        plain = torch.log_softmax(engine.continuation_logits(base_model, case, sub, tokens)[:, :-1].float(), dim=-1)
        base_sum = plain.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(-1)
        tol = compare.tolerance(compare.BATCH_SHAPE, case.dtype, case.device)
        assert_equal(beam.sequences_scores[unpadded], summed, tol,
                     "beam search's score of its best sequence vs the forward pass's summed log-probabilities",
                     base=base_sum)  # fmt: skip

    def embeds_generate():
        fed = engine.generate(model, case, batch, from_embeds=True)
        got = engine.new_tokens_of(fed)
        for k, (a, b) in enumerate(zip(fed.step_logits, greedy.step_logits, strict=True)):
            assert_equal(a[unpadded], b[unpadded], gen_tol, f"generate(inputs_embeds) step {k + 1} vs from input_ids",
                         base=base[unpadded, k])  # fmt: skip
        if not torch.equal(got[unpadded], new[unpadded]):
            raise mismatch.ValueChanged(
                f"generate(inputs_embeds) gives {got[unpadded].tolist()}, from input_ids {new[unpadded].tolist()}"
            )

    def no_cache():
        inputs = engine.inputs_only(batch)
        cached = engine.logits(model, {**inputs, "use_cache": True})
        uncached = engine.logits(model, {**inputs, "use_cache": False})
        assert_equal(uncached, cached, BITWISE, "use_cache=False vs use_cache=True logits",
                     base=engine.logits(base_model, inputs))  # fmt: skip

    ex.check("every-step-matches-forward", every_step)
    ex.check("second-call-identical", second_call)
    ex.check("beam-matches-forward", beam_matches_forward)
    ex.check("embeds-generate-equals-ids", embeds_generate)
    ex.check("no-cache-equals-cache", no_cache)
