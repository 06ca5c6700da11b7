"""Training a prefix adapter with `transformers.Trainer`, the way users do, with snapshots.

`TrainerRun` trains with an evaluation and a checkpoint at every step and records the live
model's logits at every save, so a test can ask: is the model restored at the end (or the one
loaded back from the best checkpoint) the model that was saved there?
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import engine
from .case import Case

_ARGS = inspect.signature(TrainingArguments.__init__).parameters
# transformers 4.41 renamed evaluation_strategy -> eval_strategy (huggingface/transformers#30190)
_EVAL_STRATEGY = "eval_strategy" if "eval_strategy" in _ARGS else "evaluation_strategy"
# transformers 4.38 replaced no_cuda with use_cpu
_CPU_FLAG = "use_cpu" if "use_cpu" in _ARGS else "no_cuda"
EXTRA_STEPS = 1  # Trainer properties run recipe.steps + 1 steps, so there are always >= 2 checkpoints


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
    batch: dict[str, torch.Tensor] = field(default_factory=dict)
    adapter_loads: list[str] = field(default_factory=list)  # folders Trainer loaded an adapter from

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.batch = engine.make_batch(self.case)
        self.model = engine.wrap(engine.build_base(self.case), self.case)
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
        data = RowDataset(self.batch)
        args = training_arguments(self.case, self.output_dir, max_steps or self.max_steps, self.load_best)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data,
            eval_dataset=data,
            data_collator=transformers.default_data_collator,
            callbacks=[self.snapshots],
        )
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # no log dicts on stdout
        return trainer

    def train(self, **kwargs) -> None:
        self.trainer.train(**kwargs)
        self.model.eval()

    def eval_losses(self) -> dict[int, float]:
        return {e["step"]: e["eval_loss"] for e in self.trainer.state.log_history if "eval_loss" in e}

    def best_step(self) -> int:
        """The step with the lowest eval loss, first one on ties (as Trainer picks it)."""
        losses = self.eval_losses()
        return min(losses, key=lambda s: (losses[s], s))

    def checkpoint(self, step: int) -> Path:
        return self.output_dir / f"checkpoint-{step}"

    def adapter_checkpoint(self, step: int) -> Path:
        return engine.adapter_dir(self.checkpoint(step), self.case.prefix.adapter_name)
