"""What several property bodies share: train, save and reload, the base-model reference, config diffs."""

from __future__ import annotations

import torch

from .. import engine, example, mismatch

# Keys that legitimately differ between a live config and its saved form.
RUNTIME_KEYS = {"inference_mode", "base_model_name_or_path", "revision"}


def trained(ex: example.Example, case) -> engine.Trained:
    model = ex.step("build", engine.build_model, case)
    return ex.step("train", engine.train_model, model, case)


def saved_and_loaded(ex, case, trained, directory, **load_kwargs):
    ex.step("save", engine.save, trained.model, directory)
    where = engine.adapter_dir(directory, case.prefix.adapter_name)
    step = "load-trainable" if load_kwargs.get("is_trainable") else "load"
    return where, ex.step(step, engine.load, case, where, **load_kwargs)


def base(ex: example.Example, case, batch) -> torch.Tensor:
    return ex.step("base", engine.logits, engine.pristine_base(case), batch)


def config_diff(left: dict, right: dict, what: str, names: tuple[str, str]) -> None:
    """The two configs agree, runtime keys aside; the message names only the keys that differ."""
    keys = sorted((set(left) | set(right)) - RUNTIME_KEYS)
    diff = [
        f"{k} ({names[0]} {left.get(k)!r}, {names[1]} {right.get(k)!r})" for k in keys if left.get(k) != right.get(k)
    ]
    if diff:
        raise mismatch.ValueChanged(f"adapter_config.json {what}: " + "; ".join(diff))


def rows(batch, which) -> dict[str, torch.Tensor]:
    """The batch's rows selected by `which` (a boolean mask or an index)."""
    return {k: v[which] for k, v in batch.items()}
