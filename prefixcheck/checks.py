"""The bodies of the properties declared in prefixcheck/properties.py: each goes through the
property's steps and checks its claims on an `Example` (prefixcheck/example.py).

`run_property(name, case, **context)` runs one example and records it; the tests, the benchmark,
the fault self-tests and the reproduction scripts all go through here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from peft import PeftConfig

from . import architectures, compare, engine, example, properties
from .artifacts import read_adapter
from .case import Case, PrefixSpec
from .compare import BITWISE, assert_differs, assert_equal, reload_tolerance
from .trainer import EXTRA_STEPS, TrainerRun

BODIES: dict[str, Callable[..., None]] = {}

# Keys that legitimately differ between a live config and its saved form.
RUNTIME_KEYS = {"inference_mode", "base_model_name_or_path", "revision"}


def body(name: str):
    prop = properties.get(name)

    def register(fn):
        BODIES[prop.name] = fn
        return fn

    return register


def run_property(name: str, case: Case, recorder=None, versions=None, **context) -> example.Example:
    return example.run(name, case, BODIES[name], recorder=recorder, versions=versions, **context)


# -- small shared pieces -------------------------------------------------------------------
def _trained(ex: example.Example, case: Case) -> engine.Trained:
    model = ex.step("build", engine.build_model, case)
    return ex.step("train", engine.train_model, model, case)


def _saved_and_loaded(ex, case, trained, directory, **load_kwargs):
    ex.step("save", engine.save, trained.model, directory)
    where = engine.adapter_dir(directory, case.prefix.adapter_name)
    step = "load-trainable" if load_kwargs.get("is_trainable") else "load"
    return where, ex.step(step, engine.load, case, where, **load_kwargs)


def _base(ex: example.Example, case: Case, batch) -> torch.Tensor:
    return ex.step("base", engine.logits, engine.pristine_base(case), batch)


def config_diff(left: dict, right: dict, what: str, names: tuple[str, str]) -> None:
    """The two configs agree, runtime keys aside; the message names only the keys that differ."""
    keys = sorted((set(left) | set(right)) - RUNTIME_KEYS)
    diff = [
        f"{k} ({names[0]} {left.get(k)!r}, {names[1]} {right.get(k)!r})" for k in keys if left.get(k) != right.get(k)
    ]
    if diff:
        raise compare.ValueChanged(f"adapter_config.json {what}: " + "; ".join(diff))


def expected_table_shape(case: Case, live_config=None) -> tuple[int, int]:
    """(num_virtual_tokens, num_layers * 2 * token_dim). A curated architecture's sizes are derived
    here, independently of PEFT (so a mis-sized prefix, as before peft#1901, shows); a discovered
    family's are those of the live PrefixTuningConfig, as PEFT read them from the model's config
    (its per-layer special cases, e.g. Gemma 4's largest KV footprint, are PEFT's to decide)."""
    arch = architectures.get(case.model.arch)
    nvt = case.prefix.num_virtual_tokens
    if arch.curated or live_config is None:
        return (nvt, arch.peft_num_layers(case.model) * 2 * arch.peft_token_dim(case.model))
    return (nvt, live_config.num_layers * 2 * live_config.token_dim)


# -- what PEFT writes ----------------------------------------------------------------------
@body("saved-shapes")
def saved_shapes(ex, case):
    trained = _trained(ex, case)
    live = engine.prefix_table(trained.model, case.prefix.adapter_name)
    expected = expected_table_shape(case, trained.model.peft_config[case.prefix.adapter_name])
    with engine.scratch() as d:
        ex.step("save", engine.save, trained.model, d)
        config, tensors = ex.step("read", read_adapter, engine.adapter_dir(d, case.prefix.adapter_name))

    def table_shape():
        if "prompt_embeddings" not in tensors:
            raise compare.ShapeMismatch(f"no prompt_embeddings among the saved tensors {sorted(tensors)}")
        shape = tuple(tensors["prompt_embeddings"].shape)
        if shape != expected:
            raise compare.ShapeMismatch(f"prompt_embeddings {shape} != (nvt, layers*2*token_dim) {expected}")

    def nothing_else():
        heads = tuple(config.get("modules_to_save") or ())
        others = [k for k in tensors if k != "prompt_embeddings" and not any(f".{h}." in k for h in heads)]
        assert not others, f"saved tensors {sorted(tensors)}: {others} are neither the table nor a head in {heads}"

    ex.check("table-shape", table_shape)
    ex.check("nothing-else-saved", nothing_else)
    ex.check(
        "table-equals-live",
        lambda: assert_equal(tensors["prompt_embeddings"], live, BITWISE, "saved table vs the live encoder at batch 1"),
    )


@body("config-roundtrip")
def config_roundtrip(ex, case):
    trained = _trained(ex, case)
    name = case.prefix.adapter_name
    live = trained.model.peft_config[name].to_dict()
    with engine.scratch() as d:
        where, loaded = _saved_and_loaded(ex, case, trained, d)
        saved = ex.step("read", lambda: PeftConfig.from_pretrained(str(where)).to_dict())
    ex.check("saved-equals-live", config_diff, saved, live, "saved vs live", ("saved", "live"))
    ex.check(
        "loaded-equals-saved",
        config_diff,
        loaded.peft_config[name].to_dict(),
        saved,
        "loaded vs saved",
        ("loaded", "saved"),
    )


@body("resave-identical")
def resave_identical(ex, case):
    trained = _trained(ex, case)
    name = case.prefix.adapter_name
    with engine.scratch() as d:
        _, loaded = _saved_and_loaded(ex, case, trained, d / "first")
        ex.step("resave", engine.save, loaded, d / "second")
        cfg_a, a = ex.step("read", read_adapter, engine.adapter_dir(d / "first", name))
        cfg_b, b = ex.step("read", read_adapter, engine.adapter_dir(d / "second", name))

    def tensors_identical():
        if a.keys() != b.keys():
            raise compare.ValueChanged(f"tensor names changed: {sorted(a)} -> {sorted(b)}")
        for key in a:
            if a[key].dtype != b[key].dtype:
                raise compare.ValueChanged(f"{key}: dtype {a[key].dtype} -> {b[key].dtype}")
            assert_equal(b[key], a[key], BITWISE, f"{key} after save -> load -> save")

    ex.check("tensors-identical", tensors_identical)
    ex.check("config-identical", config_diff, cfg_a, cfg_b, "first save vs second save", ("first", "second"))


# -- what a reloaded adapter computes -----------------------------------------------------
@body("reload-equality")
def reload_equality(ex, case):
    trained = _trained(ex, case)
    before = ex.step("forward", engine.logits, trained.model, trained.batch)
    with engine.scratch() as d:
        _, reloaded = _saved_and_loaded(ex, case, trained, d)
    after = ex.step("forward", engine.logits, reloaded, trained.batch)
    base = _base(ex, case, trained.batch)
    tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
    ex.check("reloaded-equals-trained", assert_equal, after, before, tol, "reloaded vs trained logits", base=base)


@body("prefix-acts")
def prefix_acts(ex, case):
    trained = _trained(ex, case)
    with engine.scratch() as d:
        _, reloaded = _saved_and_loaded(ex, case, trained, d)
    with_prefix = ex.step("forward", engine.logits, reloaded, trained.batch)
    plain = _base(ex, case, trained.batch)
    ex.check("prefix-changes-outputs", assert_differs, with_prefix, plain, "reloaded adapter vs a fresh base model")

    def disabled_is_base():
        without = ex.step("disable", engine.base_logits, reloaded, trained.batch)
        assert_equal(without, plain, BITWISE, "adapter disabled vs a fresh base model")

    ex.check("disable-restores-base", disabled_is_base)


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
        raise compare.Inconclusive(
            f"another prefix table moves the forward pass by only {moved:.3e} (judgeable above {floor:.3e})"
        )
    raise compare.PrefixIgnored(
        "generate() first step with another prefix table is bitwise the same, while the forward pass moves by "
        f"{compare.max_diff(other_forward, forward):.3e}: generate() does not use the prefix"
    )


@body("generate-first-step")
def generate_first_step(ex, case):
    trained = _trained(ex, case)
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
    trained = _trained(ex, case)
    before = ex.step("generate", engine.generate, trained.model, case, trained.batch)
    every = slice(None)
    ex.check(
        "uses-prefix", _generate_uses_prefix, ex, trained.model, case, trained.batch, before.first_step_logits, every
    )
    # only its first step is compared: one new token (its cache is sized for one, which may round
    # differently, so it serves as the prefix-effect reference only, never in a bitwise check)
    base = ex.step("base", engine.generate, engine.build_base(case), case, trained.batch, 1).first_step_logits
    with engine.scratch() as d:
        _, reloaded = _saved_and_loaded(ex, case, trained, d)
    after = ex.step("generate", engine.generate, reloaded, case, trained.batch)
    tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
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
            raise compare.ValueChanged(
                f"generate() after reload {after.sequences.tolist()} != before save {before.sequences.tolist()}"
            )

    ex.check("tokens-survive", tokens_equal)


# -- every input path ----------------------------------------------------------------------
def _rows(batch, which) -> dict[str, torch.Tensor]:
    return {k: v[which] for k, v in batch.items()}


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
    raise compare.Inconclusive("no explicit position_ids reproduce the base model's own default positions")


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
        kind = architectures.get(case.model.arch).positions
        if kind in ("rotary", "absolute"):
            raise compare.Inconclusive(
                f"{type(base_model).__name__}.forward() takes no position_ids and its {kind} positions count "
                "from the first token, pads included: a left-padded row cannot be given its own positions"
            )
        return {}
    counted = (left["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
    return {"position_ids": counted + default[0, 0]}


@body("input-paths")
def input_paths(ex, case):
    trained = _trained(ex, case)
    with engine.scratch() as d:
        _, model = _saved_and_loaded(ex, case, trained, d)
    batch = engine.inputs_only(trained.batch)
    ids = ex.step("forward", engine.logits, model, batch)
    base_model = engine.pristine_base(case)
    base = _base(ex, case, batch)
    unpadded = trained.batch["attention_mask"].bool().all(dim=1)
    real = case.recipe.seq_len - case.recipe.num_padded
    alone = {k: v[-1:, :real] if k in ("input_ids", "attention_mask") else v[-1:] for k, v in batch.items()}
    per_position = case.task in ("CAUSAL_LM", "TOKEN_CLS")  # one output per input position: the real ones
    shared: dict[str, torch.Tensor | None] = {}

    def once(name, compute):
        """What two claims share, computed by the first that asks (forward passes are most of the cost)."""
        if name not in shared:
            shared[name] = compute()
        return shared[name]

    def default_positions():
        return once("default positions", lambda: _explicit_default_positions(base_model, _rows(batch, unpadded)))

    def alone_logits(m, name):
        return once(name, lambda: engine.logits(m, alone))

    def embeds_equal_ids():
        rows = unpadded  # a padded row may take its positions from the pad tokens in the ids (RoBERTa)
        fed = {k: v for k, v in batch.items() if k != "input_ids"}
        got = engine.logits(model, {**fed, "inputs_embeds": engine.embed(model, batch["input_ids"])})
        assert_equal(got[rows], ids[rows], BITWISE, "inputs_embeds vs input_ids logits", base=base[rows])

    def no_mask_equals_ones():
        sub = _rows(batch, unpadded)
        with_ones = engine.logits(model, sub)
        without = engine.logits(model, {k: v for k, v in sub.items() if k != "attention_mask"})
        tol = compare.tolerance(compare.BATCH_SHAPE, case.dtype, case.device)
        assert_equal(without, with_ones, tol, "no attention_mask vs an all-ones mask", base=base[unpadded])

    def explicit_positions_equal_none():
        sub = _rows(batch, unpadded)
        positions = default_positions()
        fed = (
            positions
            if positions is not None
            else torch.arange(sub["input_ids"].shape[1]).repeat(len(sub["input_ids"]), 1)
        )
        try:
            got = engine.logits(model, {**sub, "position_ids": fed})
        except TypeError as exc:
            if positions is None and "position_ids" in str(exc):
                return  # refused loudly, as the base model refuses it
            raise
        assert_equal(
            got, engine.logits(model, sub), BITWISE, "explicit default position_ids vs none", base=base[unpadded]
        )

    def labels_leave_logits():
        model.eval()
        with torch.no_grad():
            out = model(**{k: v for k, v in trained.batch.items()})
        if out.loss is None or not torch.isfinite(out.loss):
            raise compare.NonFinite(f"forward with labels gives loss {out.loss}")
        assert_equal(out.logits.float().cpu(), ids, BITWISE, "logits with labels vs without", base=base)

    def padded_row_equals_alone():
        if case.recipe.padding_side != "right" or not case.recipe.num_padded:
            raise ValueError("input-paths needs a right-padded row (draw cases with padded=True, padding_side='right')")
        got = alone_logits(model, "alone")
        want, base_in_batch = ids[-1:], base[-1:]
        if per_position:
            want, base_in_batch = want[:, :real], base_in_batch[:, :real]
        base_alone = alone_logits(base_model, "base alone")
        # the same comparison without the adapter: what padding alone moves in this dtype
        tol = compare.batch_shape_tolerance(case.dtype, case.device, compare.max_diff(base_in_batch, base_alone))
        assert_equal(got, want, tol, "the right-padded row in its batch vs alone", base=base_alone)

    def left_padded_row_equals_alone():
        if case.task == "SEQ_CLS" and architectures.get(case.model.arch).encoder_style:
            # decided from the family: a tiny random head barely feels which token it pools (measured:
            # CamemBERT in bf16 within the gate on the base model, 8.7e-2 apart with the prefix)
            raise compare.Inconclusive("this family's classification pools the first token, a pad when left-padded")
        left = _left_padded(batch, case.recipe.num_padded)
        left = {**left, **_left_padding_positions(case, base_model, left, default_positions())}

        def last_row(logits):
            return logits[-1:, -real:] if per_position else logits[-1:]

        base_alone = alone_logits(base_model, "base alone")
        # the same comparison without the adapter: what left padding alone moves (an encoder's first
        # token pooled, absolute positions the model cannot be given), judged only where that is small
        base_diff = compare.max_diff(last_row(engine.logits(base_model, left)), base_alone)
        tol = compare.batch_shape_tolerance(case.dtype, case.device, base_diff)
        how = "with position_ids from its first real token" if "position_ids" in left else "without position_ids"
        got = last_row(engine.logits(model, left))
        # misplaced positions can leave the row nearer the base model than the prefixed one (PEFT < 0.19
        # drops position_ids): that is not the prefix being ignored, so every mismatch is beyond-tolerance
        assert_equal(got, alone_logits(model, "alone"), tol, f"the left-padded row ({how}) vs alone",
                     base=base_alone, follows_base_is_ignored=False)  # fmt: skip

    ex.check("embeds-equal-ids", embeds_equal_ids)
    ex.check("no-mask-equals-ones", no_mask_equals_ones)
    ex.check("explicit-positions-equal-none", explicit_positions_equal_none)
    ex.check("labels-leave-logits", labels_leave_logits)
    ex.check("padded-row-equals-alone", padded_row_equals_alone)
    ex.check("left-padded-row-equals-alone", left_padded_row_equals_alone)


@body("generate-paths")
def generate_paths(ex, case):
    trained = _trained(ex, case)
    with engine.scratch() as d:
        _, model = _saved_and_loaded(ex, case, trained, d)
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
            raise compare.ValueChanged(
                f"a second generate() gives {again.sequences.tolist()} after {greedy.sequences.tolist()}"
            )

    def beam_matches_forward():
        beam = engine.generate(model, case, batch, num_beams=2)
        tokens = engine.new_tokens_of(beam)[unpadded]
        sub = _rows(batch, unpadded)
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
            raise compare.ValueChanged(
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


# -- Trainer checkpoints -----------------------------------------------------------------
def _trainer_run(ex, case, directory, load_best):
    run = ex.step("build", TrainerRun, case, directory, max_steps=case.recipe.steps + EXTRA_STEPS, load_best=load_best)
    ex.step("trainer-train", run.train)
    return run


@body("trainer-best-model")
def trainer_best_model(ex, case):
    with engine.scratch() as d:
        run = _trainer_run(ex, case, d, load_best=True)
        best, last = run.best_step(), run.last_step()

        def best_differs():
            # the recipe's precondition, not a claim about PEFT: where training never moves the
            # outputs (bf16 at a small learning rate), restoring the best cannot be told from not
            if not run.best_differs_from_last():
                raise compare.Inconclusive(
                    f"the best checkpoint (step {best}) computes what the last (step {last}) does: nothing to restore"
                )

        def best_is_lowest():
            chosen = str(run.trainer.state.best_model_checkpoint)
            assert chosen.endswith(f"checkpoint-{best}"), (
                f"Trainer's best checkpoint {chosen} is not the lowest eval loss (step {best}, {run.eval_losses()})"
            )

        def best_loaded():
            assert run.adapter_loads and run.adapter_loads[-1].endswith(f"checkpoint-{best}"), (
                f"Trainer did not load the best checkpoint's adapter at the end (loads: {run.adapter_loads})"
            )

        ex.check("best-differs-from-last", best_differs)
        ex.check("best-is-lowest-loss", best_is_lowest)
        ex.check("best-adapter-loaded", best_loaded)
        restored = ex.step("trainer-train", engine.logits, run.model, run.batch)
        ex.check(
            "restored-equals-best",
            assert_equal,
            restored,
            run.snapshots.logits[best],
            BITWISE,
            "model at the end vs at the best save",
        )


@body("trainer-best-workaround")
def trainer_best_workaround(ex, case):
    with engine.scratch() as d:
        run = _trainer_run(ex, case, d, load_best=False)
        best = run.best_step()
        loaded = ex.step("load", engine.load, case, run.adapter_checkpoint(best))
        got = ex.step("load", engine.logits, loaded, run.batch)
    tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
    base = _base(ex, case, run.batch)
    ex.check(
        "workaround-equals-best",
        assert_equal,
        got,
        run.snapshots.logits[best],
        tol,
        "from_pretrained(best checkpoint) vs best save",
        base=base,
    )


@body("trainer-resume")
def trainer_resume(ex, case):
    with engine.scratch() as d:
        straight = _trainer_run(ex, case, d / "straight", load_best=False)
        # checkpoint-1 of the straight run is exactly what an interruption after step 1 leaves behind
        resumed = ex.step(
            "build", TrainerRun, case, d / "resumed", max_steps=case.recipe.steps + EXTRA_STEPS, load_best=False
        )
        ex.step("trainer-resume", resumed.train, resume_from_checkpoint=str(straight.checkpoint(1)))
        ex.check(
            "resumed-equals-uninterrupted",
            assert_equal,
            engine.logits(resumed.model, resumed.batch),
            engine.logits(straight.model, straight.batch),
            BITWISE,
            "resumed from checkpoint-1 vs uninterrupted training",
        )


@body("trainable-reload")
def trainable_reload(ex, case):
    trained = _trained(ex, case)
    with engine.scratch() as d:
        _, reloaded = _saved_and_loaded(ex, case, trained, d, is_trainable=True)

    def continue_both():
        # Where a version allows it: both continue with fresh optimizers and must stay together.
        engine.train(trained.model, case, trained.batch)
        engine.train(reloaded, case, trained.batch)

    ex.step("load-trainable", continue_both)
    tol = reload_tolerance(case.prefix.prefix_projection, case.dtype, case.device)
    ex.check(
        "continued-equals-original",
        assert_equal,
        engine.logits(reloaded, trained.batch),
        engine.logits(trained.model, trained.batch),
        tol,
        "continued after reload vs continued",
    )


# -- several adapters, dtypes, devices ---------------------------------------------------
@body("multi-adapter")
def multi_adapter(ex, case, second: PrefixSpec):
    first = case.prefix.adapter_name
    other_case = case.replace(prefix=second)
    trained = _trained(ex, case)
    model, batch = trained.model, trained.batch
    alone = ex.step("forward", engine.logits, model, batch)

    def add_second():
        model.add_adapter(second.adapter_name, engine.prefix_config(other_case))
        model.set_adapter(second.adapter_name)
        engine.train_model(model, other_case, second.adapter_name)

    ex.step("add-adapter", add_second)
    expected = {}
    for name in (second.adapter_name, first):
        model.set_adapter(name)
        expected[name] = ex.step("forward", engine.logits, model, batch)
    base = _base(ex, case, batch)

    def adapters_differ():
        if case.prefix.init_weights == second.init_weights == "zero":
            # both start from zero tables and train alike on one batch: a few small steps can round to
            # the same outputs (seen on Bloom SEQ_CLS in bf16), so equality proves nothing here
            raise compare.Inconclusive("both adapters start from zero tables: their outputs may coincide")
        assert_differs(expected[first], expected[second.adapter_name], "adapter vs adapter")

    ex.check("adapters-differ", adapters_differ)
    ex.check("switching-switches", assert_equal, expected[first], alone, BITWISE, f"set_adapter({first!r}) again")
    with engine.scratch() as d:
        ex.step("save", engine.save, model, d)
        reloaded = ex.step("load", engine.load, case, engine.adapter_dir(d, first))
        ex.step(
            "load-adapter",
            reloaded.load_adapter,
            str(engine.adapter_dir(d, second.adapter_name)),
            adapter_name=second.adapter_name,
        )
    for claim, name, spec in (
        ("first-reproduces", first, case.prefix),
        ("second-reproduces", second.adapter_name, second),
    ):
        tol = reload_tolerance(spec.prefix_projection, case.dtype, case.device)

        def reproduces(name=name, tol=tol):
            reloaded.set_adapter(name)
            assert_equal(
                engine.logits(reloaded, batch), expected[name], tol, f"adapter {name!r} after reload", base=base
            )

        ex.check(claim, reproduces)


@body("dtype-roundtrip")
def dtype_roundtrip(ex, case):
    trained = _trained(ex, case)
    name = case.prefix.adapter_name
    with engine.scratch() as d:
        where, fp32 = _saved_and_loaded(ex, case, trained, d / "fp32")
        reference = ex.step("forward", engine.logits, fp32, trained.batch)
        base = _base(ex, case, trained.batch)
        base_bf16 = ex.step("base", engine.logits, engine.pristine_base(case, dtype="bfloat16"), trained.batch)
        low = ex.step("load-bf16", engine.load, case, where, base=engine.build_base(case, dtype="bfloat16"))

        def within_bf16():
            tol = compare.cast_tolerance("bfloat16", case.device, compare.max_diff(base_bf16, base))
            assert_equal(engine.logits(low, trained.batch), reference, tol, "fp32 adapter on a bf16 base", base=base)

        ex.check("bf16-within-tolerance", within_bf16)
        ex.step("resave", engine.save, low, d / "via-bf16")
        via = engine.adapter_dir(d / "via-bf16", name)
        config, tables = ex.step("read", read_adapter, via)
        _, original = ex.step("read", read_adapter, where)
        ex.check(
            "table-bitwise-via-bf16",
            lambda: assert_equal(tables["prompt_embeddings"], original["prompt_embeddings"], BITWISE, "table via bf16"),
        )
        # a task head trained alongside (modules_to_save) lives in the base's dtype: it comes back within bf16
        back_tol = (
            compare.tolerance(compare.DTYPE_CAST, "bfloat16", case.device) if config.get("modules_to_save") else BITWISE
        )
        back = ex.step("load", engine.load, case, via)
        ex.check(
            "back-to-fp32",
            lambda: assert_equal(
                engine.logits(back, trained.batch), reference, back_tol, "fp32 -> bf16 -> fp32", base=base
            ),
        )


@body("cuda-roundtrip")
def cuda_roundtrip(ex, case):
    reload_equality(ex, case)  # the same steps and claim, on a CUDA case


@body("cpu-cuda-transfer")
def cpu_cuda_transfer(ex, case):
    """Saved on `case.device`, loaded on the other device: equal within the device tolerance."""
    there = "cpu" if case.device == "cuda" else "cuda"
    trained = _trained(ex, case)
    reference = engine.logits(trained.model, trained.batch)
    moved_case = case.replace(device=there)
    with engine.scratch() as d:
        ex.step("save", engine.save, trained.model, d)
        moved = ex.step("load-other-device", engine.load, moved_case, engine.adapter_dir(d, case.prefix.adapter_name))
    batch = {k: v.to(there) for k, v in trained.batch.items()}
    base = ex.step("base", engine.logits, engine.build_base(moved_case), batch)
    tol = compare.tolerance(compare.DEVICE, case.dtype, "cuda")
    if case.prefix.prefix_projection:
        extra = reload_tolerance(True, case.dtype, there)
        tol = compare.Tolerance(tol.atol + extra.atol, tol.rtol + extra.rtol, f"{tol.reason}; plus the projection one")
    ex.check(
        "equals-across-devices",
        assert_equal,
        engine.logits(moved, batch),
        reference,
        tol,
        f"saved on {case.device}, loaded on {there}",
        base=base,
    )


missing = set(properties.NAMES) - set(BODIES)
if missing:  # the declarations and the bodies are one list: a property without a body is a bug here
    raise RuntimeError(f"properties without a body in prefixcheck.checks: {sorted(missing)}")
