"""Trainer checkpoints: load_best_model_at_end, the documented workaround, resume_from_checkpoint."""

from __future__ import annotations

from .. import engine, mismatch
from ..compare import BITWISE, assert_equal, reload_tolerance
from ..trainer import EXTRA_STEPS, TrainerRun
from . import body, common


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
                raise mismatch.Inconclusive(
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
    tol = reload_tolerance(case.prefix.encoded, case.dtype, case.device)
    base = common.base(ex, case, run.batch)
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
