"""The one tolerance table, and the comparisons that use it.

Equality is bitwise wherever both sides run the same computation on the same weights. A
tolerance appears only where the computation really differs, and each entry says why.
The compatibility matrix and the property suite both read `tolerance()`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import torch

# What differs between the two sides being compared.
SAME = "same"  # same weights, same kernels: must be bitwise equal
PROJECTION = "projection"  # trained side runs the MLP at batch B, saved side is its batch-1 output
DTYPE_CAST = "dtype-cast"  # an fp32 adapter evaluated on a lower-precision base vs the fp32 reference
DEVICE = "device"  # the same model evaluated on CPU and on CUDA
GENERATE = "generate"  # generate()'s prefill step vs a plain forward pass of the same model
CROSS_VERSION = "cross-version"  # the same weights under another torch/transformers/peft release
BATCH_SHAPE = "batch-shape"  # the same rows in another batch shape or attention-kernel path


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    reason: str
    measured: str = ""  # the largest difference seen on clean runs, and where (docs/speed.md)
    key: str = ""  # "kind/dtype/device" in TOLERANCES

    @property
    def bitwise(self) -> bool:
        return self.atol == 0 and self.rtol == 0


BITWISE = Tolerance(0.0, 0.0, "same weights and kernels on both sides", "bitwise by definition", key="same")

# (kind, dtype, device) -> Tolerance; `None` for dtype/device means "any". Every entry states why
# the two sides differ and the largest difference measured on clean runs (compare.OBSERVED,
# recorded in every run's summary.json as tolerance_headroom). A claim judged with an entry is
# inconclusive where the prefix moves its outputs by no more than the entry (effect_floor).
_TABLE = (
    (SAME, None, None, 0.0, 0.0, BITWISE.reason, BITWISE.measured),
    (
        PROJECTION,
        "float32",
        None,
        1e-5,
        1e-5,
        "prefix_projection (and P-tuning's encoder): the saved table is the MLP output at batch 1, the "
        "trained model recomputes it at batch B; matmul blocking differs by a few ulps",
        "4.8e-7 on logits (nightly profile, peft 0.21.2 / transformers 5.23, 2026-11-29): 4.8% of atol",
    ),
    (
        PROJECTION,
        "bfloat16",
        None,
        3e-2,
        3e-2,
        "as fp32 projection, then the prefix is rounded to bf16: one ulp of 2^-8 may flip",
        "0 (bitwise) on the same runs: the MLP runs in fp32 and rounds identically at batch 1 and B",
    ),
    (PROJECTION, "float16", None, 5e-3, 5e-3, "as fp32 projection, then rounded to fp16 (2^-11 ulp)", "CUDA only"),
    (
        GENERATE,
        "float32",
        None,
        1e-5,
        1e-5,
        "generate()'s prefill builds its own mask/positions and cache path",
        "2.9e-6 (dev profile, seed 30357, transformers 5.23: mT5 with 12 virtual tokens, 161/192 logits a few ulp "
        "apart; 1e-6 failed there): 29% of atol; 8.9e-8 elsewhere in dev, 7.5e-8 in the nightly profile",
    ),
    (
        GENERATE,
        "bfloat16",
        None,
        1e-2,
        0.0,
        "as fp32 generate, one bf16 ulp allowed",
        "0 (bitwise) on transformers 5.23 (ci, dev, nightly); 9.0e-3 on 5.24, where generate() drops the prefix (known)",
    ),
    (GENERATE, "float16", None, 2e-3, 0.0, "as fp32 generate, one fp16 ulp allowed", "CUDA only"),
    (
        BATCH_SHAPE,
        "float32",
        None,
        1e-5,
        1e-5,
        "the same row computed alone vs inside a padded batch, without a mask vs with an all-ones one, or "
        "a beam's score summed by generate() vs by a forward pass: other matmul shapes and kernel paths",
        "not yet measured on clean runs (new in this session; summary.json tolerance_headroom records it)",
    ),
    (BATCH_SHAPE, "bfloat16", None, 2e-2, 2e-2, "as fp32 batch-shape, one or two bf16 ulps", "as fp32"),
    (BATCH_SHAPE, "float16", None, 5e-3, 5e-3, "as fp32 batch-shape, in fp16", "CUDA only"),
    (
        CROSS_VERSION,
        "float32",
        None,
        1e-5,
        1e-5,
        "another release may reorder ops",
        "GPT-2 base logits move by ~2e-7 between transformers 4.3x and 5.x (matrix)",
    ),
    (CROSS_VERSION, "bfloat16", None, 5e-2, 5e-2, "as fp32 cross-version, rounded to bf16", "matrix bf16 artifacts"),
    (
        DTYPE_CAST,
        "bfloat16",
        None,
        1e-1,
        5e-2,
        "bf16 keeps 8 mantissa bits: tiny random models' logits (|x| ~ 1) move by ~1e-2 per layer",
        "4.4e-2 (nightly profile, fp32 adapter on a bf16 base): 44% of atol (cast_tolerance: inconclusive where the base alone moves by over half of it)",
    ),
    (
        DEVICE,
        "float32",
        "cuda",
        1e-4,
        1e-4,
        "CUDA kernels (TF32 off) vs CPU: different reduction order",
        "no GPU run yet",
    ),
    (
        DEVICE,
        "bfloat16",
        "cuda",
        1e-1,
        5e-2,
        "bf16 on CUDA vs CPU: different reduction order, 8 bits",
        "no GPU run yet",
    ),
    (DEVICE, "float16", "cuda", 2e-2, 2e-2, "fp16 on CUDA vs CPU", "no GPU run yet"),
)
TOLERANCES: dict[tuple[str, str | None, str | None], Tolerance] = {
    (kind, dtype, device): Tolerance(atol, rtol, reason, measured, "/".join(str(x) for x in (kind, dtype, device)))
    for kind, dtype, device, atol, rtol, reason, measured in _TABLE
}


def tolerance(kind: str, dtype: str = "float32", device: str = "cpu") -> Tolerance:
    for key in ((kind, dtype, device), (kind, dtype, None), (kind, None, None)):
        if key in TOLERANCES:
            return TOLERANCES[key]
    raise KeyError(f"no tolerance stated for {kind!r} at {dtype}/{device}; add one to prefixcheck.compare.TOLERANCES")


def reload_tolerance(encoded: bool, dtype: str, device: str) -> Tolerance:
    """Trained model vs the same adapter after save/load (see the table for why). `encoded`: the
    saved table is a network's output (PrefixSpec.encoded: prefix_projection's MLP, P-tuning's MLP
    or LSTM), which the trained model recomputes at its batch size."""
    return tolerance(PROJECTION if encoded else SAME, dtype, device)


# A tiny random model can be more sensitive to a cast than the table's atol allows: a T5 with
# d_model=4 moves its *base* logits by 1.2e-1 to 1.3e-1 from fp32 to bf16, and the adapter on it
# by up to 3.5e-1 (dev profile, seed 13, both pin sets). Where the base alone uses more than this
# share of the cast tolerance, a cast error of the adapter cannot be told from the model's own
# sensitivity: the claim is inconclusive there, never widened (a widened bound still flaked).
CAST_BASE_SHARE = 0.5


def _unless_the_base_moves(entry: str, dtype: str, device: str, base_diff: float, how: str) -> Tolerance:
    """The `entry` tolerance, provided the base model alone (`base_diff`, its max |diff| between the
    two sides on the same inputs) stays within CAST_BASE_SHARE of it; Inconclusive otherwise."""
    table = tolerance(entry, dtype, device)
    if base_diff > CAST_BASE_SHARE * table.atol:
        raise Inconclusive(
            f"the base model alone moves by {base_diff:.3e} {how} (over {CAST_BASE_SHARE:g} of the "
            f"{table.atol:g} tolerance): too sensitive to judge the adapter"
        )
    return table


def cast_tolerance(dtype: str, device: str, base_cast_diff: float) -> Tolerance:
    """An fp32 adapter on a `dtype` base vs the fp32 reference (DTYPE_CAST), judged only where the
    cast alone leaves the base model within CAST_BASE_SHARE of it."""
    return _unless_the_base_moves(DTYPE_CAST, dtype, device, base_cast_diff, f"when cast to {dtype}")


def batch_shape_tolerance(dtype: str, device: str, base_batch_diff: float) -> Tolerance:
    """A row inside a padded batch vs the same row alone (BATCH_SHAPE), judged only where padding
    alone leaves the base model within CAST_BASE_SHARE of it. Measured: T5 in bfloat16 at width 256
    (16 heads, 4 layers, 22 of 30 tokens padded) moves by 3.1e-2 with no adapter, over the 2e-2 entry."""
    return _unless_the_base_moves(
        BATCH_SHAPE, dtype, device, base_batch_diff, "between a padded batch and the row alone"
    )


# How two outputs fail to agree, and Inconclusive: prefixcheck/mismatch.py (no torch: the registry reads them).
from .mismatch import (  # noqa: E402 (beside the comparisons that raise them)
    BeyondTolerance,
    Inconclusive,
    NonFinite,
    PrefixIgnored,
    ShapeMismatch,
)

# A pass within a tolerance says something about the prefix only when a missing prefix would
# have failed it: the prefix must move the compared outputs by more than the tolerance (any
# amount for a bitwise claim). Below that the claim is Inconclusive, never a pass. Where a known
# bug shows only above a larger effect (a bug that scales the prefix's effect: wrong positions),
# its registry entry says so (`effect_above`) and the example sets a larger factor for that claim.
EFFECT_FLOOR_FACTOR = contextvars.ContextVar("EFFECT_FLOOR_FACTOR", default=1.0)


def effect_floor(tol: Tolerance, expected: torch.Tensor) -> float:
    if tol.bitwise:
        return 0.0
    return EFFECT_FLOOR_FACTOR.get() * (tol.atol + tol.rtol * expected.float().abs().max().item())


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


# The largest difference each tolerance entry let through in this process (summary.json's
# tolerance_headroom, the benchmark's table): entry key -> (largest |diff| seen on a pass, atol).
OBSERVED: dict[str, tuple[float, float]] = {}


def _observe(tol: Tolerance, diff: float) -> None:
    """Keep, per entry, the pass that used the largest share of its atol."""
    if not tol.bitwise:
        name = tol.key or tol.reason
        seen, atol = OBSERVED.get(name, (0.0, tol.atol))
        if diff / tol.atol >= seen / atol:
            OBSERVED[name] = (diff, tol.atol)


def assert_equal(
    actual: torch.Tensor,
    expected: torch.Tensor,
    tol: Tolerance,
    what: str,
    base: torch.Tensor | None = None,
    follows_base_is_ignored: bool = True,
) -> None:
    """`actual` equals `expected` within `tol` (bitwise when the tolerance is zero).

    With `base` (the base model's output for the same inputs) a mismatch where `actual` follows
    the base model is reported as PrefixIgnored, and a pass where the prefix moved `expected` by
    less than the effect floor is Inconclusive. `follows_base_is_ignored=False` keeps the second
    and drops the first, where `actual` can sit nearer the base for another reason (a prefixed
    row at misplaced positions): every mismatch is then BeyondTolerance.
    """
    if actual.shape != expected.shape:
        raise ShapeMismatch(f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    if tol.bitwise:
        ok = torch.equal(actual, expected)
    else:
        ok = torch.allclose(actual.float(), expected.float(), atol=tol.atol, rtol=tol.rtol)
    if ok:
        _observe(tol, max_diff(actual, expected))
        if base is not None and base.shape == expected.shape:
            effect = max_diff(expected, base)
            floor = effect_floor(tol, expected)
            if effect <= floor:
                raise Inconclusive(
                    f"{what}: equal within {tol.atol:g}, but the prefix moves these outputs by only {effect:.3e} "
                    f"(judgeable above {floor:.3e})"
                )
        return
    if not torch.isfinite(actual).all() and torch.isfinite(expected).all():
        bad = int((~torch.isfinite(actual)).sum())
        raise NonFinite(f"{what}: {bad}/{actual.numel()} elements are NaN/inf where the expected output is finite")
    diff = (actual.float() - expected.float()).abs()
    follows = follows_base_is_ignored and base is not None and base.shape == actual.shape
    if follows and max_diff(actual, base) < diff.max().item():
        raise PrefixIgnored(
            f"{what}: follows the base model (max |diff| {max_diff(actual, base):.3e} to the base model, "
            f"{diff.max().item():.3e} to the expected output): the prefix was not applied"
        )
    raise BeyondTolerance(
        f"{what}: max |diff| {diff.max().item():.3e} at {argmax_index(diff)}, "
        f"{int((diff > 0).sum())}/{diff.numel()} elements differ; allowed atol={tol.atol} rtol={tol.rtol} "
        f"({tol.reason})",
        diff.max().item(),
    )


def assert_differs(actual: torch.Tensor, base: torch.Tensor, what: str, tol: Tolerance = BITWISE) -> None:
    """The prefix must change something: `actual` differs from `base` (the output without the
    prefix, or with another one). Bitwise equal: PrefixIgnored (dropping the prefix gives exactly
    the other computation). Different by no more than the effect floor of `tol`: Inconclusive (a
    prefix that barely acts cannot be told from rounding)."""
    if actual.shape != base.shape:
        raise ShapeMismatch(f"{what}: shape {tuple(actual.shape)} != the other side's {tuple(base.shape)}")
    if torch.equal(actual, base):
        raise PrefixIgnored(f"{what}: bitwise equal; the prefix had no effect")
    effect, floor = max_diff(actual, base), effect_floor(tol, base)
    if effect <= floor:
        raise Inconclusive(f"{what}: the prefix moves these outputs by only {effect:.3e} (judgeable above {floor:.3e})")


def argmax_index(diff: torch.Tensor) -> tuple[int, ...]:
    flat = int(diff.argmax())
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
