"""Training a prefix adapter with `transformers.Trainer`, the way users do, with snapshots.

`TrainerRun` trains with an evaluation and a checkpoint at every step and records the live
model's logits at every save, so a test can ask: is the model restored at the end (or the one
loaded back from the best checkpoint) the model that was saved there?

The evaluation set is built so that the answer means something: it holds the training inputs with
the labels training moves away from (`receding_labels`, found by a rehearsal of the run, `rehearse`),
so the eval loss rises and the best checkpoint (lowest eval loss) is an early one, not the last: a
Trainer that keeps the last model instead of loading the best one computes something else.
`TrainerRun.best_differs_from_last()` says whether that happened for a given run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import architectures, engine
from .case import Case

_ARGS = inspect.signature(TrainingArguments.__init__).parameters
# transformers 4.41 renamed evaluation_strategy -> eval_strategy (huggingface/transformers#30190)
_EVAL_STRATEGY = "eval_strategy" if "eval_strategy" in _ARGS else "evaluation_strategy"
# transformers 4.38 replaced no_cuda with use_cpu
_CPU_FLAG = "use_cpu" if "use_cpu" in _ARGS else "no_cuda"
EXTRA_STEPS = 1  # Trainer properties run recipe.steps + 1 steps, so there are always >= 2 checkpoints
# A run that loads the best model goes on up to this many steps where its last checkpoint would
# otherwise compute exactly what its first did (measured: bf16 with lr 1e-3 and a zero-initialised
# prefix needs 10-12 steps before the outputs move at all).
MOVE_WITHIN_STEPS = 16


def step_seed(case: Case, step: int) -> int:
    """The seed of torch's generator for training step `step` (1-based) of a run that loads the
    best model (`StepSeeds`), and of the same step in its rehearsal."""
    return case.seed * 1_000 + step


class StepSeeds(TrainerCallback):
    """Seeds torch's generator before every training step from (case seed, step), so the dropout
    masks Trainer draws are the ones `rehearse` drew. Only on runs that load the best model: a
    resumed run must get its masks from the random state Trainer saved in the checkpoint, which is
    what trainer-resume checks."""

    def __init__(self, case: Case) -> None:
        self.case = case

    def on_step_begin(self, args, state, control, **kwargs):
        torch.manual_seed(step_seed(self.case, state.global_step + 1))


def rehearse(
    case: Case, model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int, up_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """(logits after the first step, logits after the last step, the last step) of `steps` AdamW
    steps on `batch`, taken the way Trainer will take them (same learning rate, constant schedule,
    no weight decay, gradient norm clipped at 1, train mode with the dropout masks of `StepSeeds`).
    Where the last step computes exactly what the first did (bf16 with a small learning rate: the
    prefix moves less than the outputs' rounding), the rehearsal goes on, up to step `up_to`, to
    the first step that computes something else; if none does, the last step stays `steps`.

    None where a forward or backward pass fails: Trainer then meets that failure where a user does,
    in `train()`. Torch's random state and the trainable weights are put back bit for bit, so
    Trainer starts from the same model and the same random state as without a rehearsal."""
    up_to = max(steps, up_to or steps)
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    was_training = model.training
    opt = torch.optim.AdamW(params, lr=case.recipe.learning_rate, weight_decay=0.0)
    try:
        with torch.random.fork_rng(devices=[] if case.device == "cpu" else [torch.cuda.current_device()]):
            for step in range(1, up_to + 1):
                torch.manual_seed(step_seed(case, step))
                model.train()
                model(**batch).loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if step == 1:
                    first = engine.logits(model, batch)
                if step >= steps:
                    last = engine.logits(model, batch)
                    if not torch.equal(last, first):
                        return first, last, step
            return first, last, steps  # nothing moved: last == first, as at `steps`
    except Exception:  # any failure here is Trainer's to report, where users meet it: in train()
        return None
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
                p.grad = None
        model.train(was_training)


def num_labels(case: Case) -> int:
    """How many values a label can take: classes, or token ids."""
    labels = architectures.blueprint(case).num_labels
    return case.model.vocab_size if labels is None else labels


def receding_labels(
    case: Case, batch: dict[str, torch.Tensor], rehearsed: tuple[torch.Tensor, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """The evaluation batch: the training batch's inputs, and at every labelled position (-100
    stays ignored) the label whose log-probability falls the most from the first training step to
    the last in the rehearsal (`rehearse`): the answer training moves away from.

    Why: evaluated on its own training batch, the eval loss falls at (almost) every step, so the
    best checkpoint (lowest eval loss) is the last one, and "the model at the end computes what the
    best checkpoint computed" holds even when Trainer loads nothing. Wherever a prediction changes,
    some label's log-probability falls (the probabilities still sum to 1), so with these labels the
    eval loss is higher at the last step than at the first, and the best checkpoint is an earlier
    one that computes something else. A fixed other label is not enough: with 64 token ids a
    training step moves a given other token's probability up about as often as down (measured on
    100 drawn cases per task, transformers 5.23: the best was still the last in 50% of the causal-LM
    and 32% of the seq2seq runs; with these labels in none of 200 per task). Without a rehearsal (a failing forward)
    each label is moved half its range. The inputs are the training rows, so the snapshot logits
    judge the model on the inputs it was scored on.
    """
    labels = batch["labels"].cpu()
    n = num_labels(case)
    if rehearsed is None:
        moved = (labels + n // 2) % n
    else:
        first, last = rehearsed
        fall = (last.log_softmax(-1) - first.log_softmax(-1))[..., :n]
        if case.task == "CAUSAL_LM":  # the logits at t - 1 predict the label at t
            fall = torch.cat([fall[:, :1], fall[:, :-1]], dim=1)
        moved = fall.argmin(-1)
    moved = torch.where(labels == -100, labels, moved)
    return {**batch, "labels": moved.to(batch["labels"].device)}


class RowDataset(torch.utils.data.Dataset):
    """The case's batch, one row per item, on CPU (Trainer moves it)."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = {k: v.cpu() for k, v in batch.items()}
        self.n = len(next(iter(self.batch.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.batch.items()}


class Snapshots(TrainerCallback):
    """Logits of the live model at every checkpoint save, keyed by global step."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = batch
        self.logits: dict[int, torch.Tensor] = {}

    def on_save(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        self.logits[state.global_step] = engine.logits(model, self.batch)
        model.train(was_training)


def training_arguments(case: Case, output_dir: str | Path, max_steps: int, load_best: bool) -> TrainingArguments:
    kwargs = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": case.recipe.batch_size,
        "per_device_eval_batch_size": case.recipe.batch_size,
        "max_steps": max_steps,
        "learning_rate": case.recipe.learning_rate,
        "lr_scheduler_type": "constant",
        _EVAL_STRATEGY: "steps",
        "eval_steps": 1,
        "save_strategy": "steps",
        "save_steps": 1,
        "logging_steps": 1,
        "load_best_model_at_end": load_best,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "report_to": [],
        "seed": case.seed,
        "data_seed": case.seed,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
        "label_names": ["labels"],
        _CPU_FLAG: case.device == "cpu",
    }
    if "save_safetensors" in _ARGS:
        kwargs["save_safetensors"] = True
    return TrainingArguments(**kwargs)


@dataclass
class TrainerRun:
    case: Case
    output_dir: Path
    max_steps: int
    load_best: bool = True
    model: torch.nn.Module | None = None
    trainer: Trainer | None = None
    snapshots: Snapshots | None = None
    batch: dict[str, torch.Tensor] = field(default_factory=dict)  # the training batch; snapshots judge on it
    eval_batch: dict[str, torch.Tensor] = field(default_factory=dict)  # its inputs, receding labels
    adapter_loads: list[str] = field(default_factory=list)  # folders Trainer loaded an adapter from

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.batch = engine.make_batch(self.case)
        self.model = engine.wrap(engine.build_base(self.case), self.case)
        # A run that loads the best model trains on until its last checkpoint computes something
        # other than its first (a few more steps, in bf16 with a small learning rate), so
        # max_steps may grow; last_step() is where it ended.
        rehearsal = rehearse(
            self.case, self.model, self.batch, self.max_steps, MOVE_WITHIN_STEPS if self.load_best else None
        )
        if rehearsal is not None:
            self.max_steps = rehearsal[2]
        self.eval_batch = receding_labels(self.case, self.batch, None if rehearsal is None else rehearsal[:2])
        self._observe_adapter_loads(self.model)
        self.snapshots = Snapshots(self.batch)
        self.trainer = self.make_trainer(self.model)

    def _observe_adapter_loads(self, model) -> None:
        """Record every `load_adapter` call (Trainer restores PEFT checkpoints through it)."""
        original = model.load_adapter

        def load_adapter(model_id, *args, **kwargs):
            result = original(model_id, *args, **kwargs)
            self.adapter_loads.append(str(model_id))
            return result

        model.load_adapter = load_adapter

    def make_trainer(self, model: torch.nn.Module, max_steps: int | None = None) -> Trainer:
        args = training_arguments(self.case, self.output_dir, max_steps or self.max_steps, self.load_best)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=RowDataset(self.batch),
            eval_dataset=RowDataset(self.eval_batch),  # see receding_labels: the best is not the last
            data_collator=transformers.default_data_collator,
            callbacks=[self.snapshots, StepSeeds(self.case)] if self.load_best else [self.snapshots],
        )
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # no log dicts on stdout
        return trainer

    def train(self, **kwargs) -> None:
        try:
            self.trainer.train(**kwargs)
        except RuntimeError as exc:  # the Trainer's backward() on a loss the adapter took no part in
            if engine.NO_GRAD_LOSS in str(exc):
                raise engine.not_received(self.model) from exc
            raise
        self.model.eval()
        # as engine.train_model: a prefix trained to NaN/inf makes every later check meaningless
        name = self.case.prefix.adapter_name
        if not torch.isfinite(engine.prefix_table(self.model, name)).all():
            raise engine.TrainingStalled(
                f"Trainer left the prefix table of {name!r} non-finite (NaN/inf): the prefix's gradient was not finite"
            )

    def eval_losses(self) -> dict[int, float]:
        return {e["step"]: e["eval_loss"] for e in self.trainer.state.log_history if "eval_loss" in e}

    def best_step(self) -> int:
        """The step with the lowest eval loss, first one on ties (as Trainer picks it)."""
        losses = self.eval_losses()
        return min(losses, key=lambda s: (losses[s], s))

    def last_step(self) -> int:
        """The step of the last checkpoint saved (the model training ended with)."""
        return max(self.snapshots.logits)

    @property
    def step_logits(self) -> dict[int, torch.Tensor]:
        """The live model's logits on `batch` at every checkpoint save, keyed by global step."""
        return self.snapshots.logits

    def best_differs_from_last(self) -> bool:
        """Precondition of trainer-best-model: the best checkpoint is not the last one and computes
        something else, so a Trainer that keeps the last model instead of loading the best fails."""
        best, last = self.best_step(), self.last_step()
        return best != last and not torch.equal(self.step_logits[best], self.step_logits[last])

    def checkpoint(self, step: int) -> Path:
        return self.output_dir / f"checkpoint-{step}"

    def adapter_checkpoint(self, step: int) -> Path:
        return engine.adapter_dir(self.checkpoint(step), self.case.prefix.adapter_name)
