"""The one tolerance table, and the comparisons that use it.

Equality is bitwise wherever both sides run the same computation on the same weights. A
tolerance appears only where the computation really differs, and each entry says why.
The compatibility matrix and the property suite both read `tolerance()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# What differs between the two sides being compared.
SAME = "same"  # same weights, same kernels: must be bitwise equal
PROJECTION = "projection"  # trained side runs the MLP at batch B, saved side is its batch-1 output
DTYPE_CAST = "dtype-cast"  # an fp32 adapter evaluated on a lower-precision base vs the fp32 reference
DEVICE = "device"  # the same model evaluated on CPU and on CUDA
GENERATE = "generate"  # generate()'s prefill step vs a plain forward pass of the same model
CROSS_VERSION = "cross-version"  # the same weights under another torch/transformers/peft release


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    reason: str

    @property
    def bitwise(self) -> bool:
        return self.atol == 0 and self.rtol == 0


BITWISE = Tolerance(0.0, 0.0, "same weights and kernels on both sides")

# (kind, dtype, device) -> Tolerance; `None` for dtype/device means "any".
TOLERANCES: dict[tuple[str, str | None, str | None], Tolerance] = {
    (SAME, None, None): BITWISE,
    (PROJECTION, "float32", None): Tolerance(
        1e-5,
        1e-5,
        "prefix_projection: the saved table is the MLP output at batch 1, the trained model recomputes it "
        "at batch B; matmul blocking differs by a few ulps (up to ~1e-6 seen on logits)",
    ),
    (PROJECTION, "bfloat16", None): Tolerance(
        3e-2, 3e-2, "as fp32 projection, then the prefix is rounded to bf16: one ulp of 2^-8 may flip"
    ),
    (PROJECTION, "float16", None): Tolerance(5e-3, 5e-3, "as fp32 projection, then rounded to fp16 (2^-11 ulp)"),
    (GENERATE, "float32", None): Tolerance(
        1e-6, 1e-6, "generate()'s prefill builds its own mask/positions and cache path; up to 6e-8 seen in fp32"
    ),
    (GENERATE, "bfloat16", None): Tolerance(1e-2, 0.0, "as fp32 generate; bitwise equal seen in bf16, one ulp allowed"),
    (GENERATE, "float16", None): Tolerance(2e-3, 0.0, "as fp32 generate, one fp16 ulp allowed"),
    (CROSS_VERSION, "float32", None): Tolerance(
        1e-5, 1e-5, "another release may reorder ops: GPT-2 base logits move by ~2e-7 between transformers 4.3x and 5.x"
    ),
    (CROSS_VERSION, "bfloat16", None): Tolerance(5e-2, 5e-2, "as fp32 cross-version, rounded to bf16"),
    (DTYPE_CAST, "bfloat16", None): Tolerance(
        1e-1, 5e-2, "bf16 keeps 8 mantissa bits: tiny random models' logits (|x| ~ 1) move by ~1e-2 per layer"
    ),
    (DTYPE_CAST, "float16", None): Tolerance(1e-2, 1e-2, "fp16 keeps 11 mantissa bits"),
    (DEVICE, "float32", "cuda"): Tolerance(1e-4, 1e-4, "CUDA kernels (TF32 off) vs CPU: different reduction order"),
    (DEVICE, "bfloat16", "cuda"): Tolerance(1e-1, 5e-2, "bf16 on CUDA vs CPU: different reduction order, 8 bits"),
    (DEVICE, "float16", "cuda"): Tolerance(2e-2, 2e-2, "fp16 on CUDA vs CPU"),
}


def tolerance(kind: str, dtype: str = "float32", device: str = "cpu") -> Tolerance:
    for key in ((kind, dtype, device), (kind, dtype, None), (kind, None, None)):
        if key in TOLERANCES:
            return TOLERANCES[key]
    raise KeyError(f"no tolerance stated for {kind!r} at {dtype}/{device}; add one to prefixcheck.compare.TOLERANCES")


def reload_tolerance(prefix_projection: bool, dtype: str, device: str) -> Tolerance:
    """Trained model vs the same adapter after save/load (see the table for why)."""
    return tolerance(PROJECTION if prefix_projection else SAME, dtype, device)


class OutputMismatch(AssertionError):
    """Two outputs that should agree do not; the message carries the size of the difference."""


def assert_equal(actual: torch.Tensor, expected: torch.Tensor, tol: Tolerance, what: str) -> None:
    if actual.shape != expected.shape:
        raise OutputMismatch(f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    if tol.bitwise:
        if torch.equal(actual, expected):
            return
    elif torch.allclose(actual.float(), expected.float(), atol=tol.atol, rtol=tol.rtol):
        return
    diff = (actual.float() - expected.float()).abs()
    raise OutputMismatch(
        f"{what}: max |diff| {diff.max().item():.3e} at {argmax_index(diff)}, "
        f"{int((diff > 0).sum())}/{diff.numel()} elements differ; allowed atol={tol.atol} rtol={tol.rtol} "
        f"({tol.reason})"
    )


def assert_differs(actual: torch.Tensor, other: torch.Tensor, what: str, min_diff: float = 1e-6) -> None:
    """The prefix must change something: a max difference above `min_diff`."""
    if actual.shape == other.shape and (actual.float() - other.float()).abs().max().item() <= min_diff:
        raise OutputMismatch(f"{what}: outputs equal (max |diff| <= {min_diff}); the prefix had no effect")


def assert_closer(actual: torch.Tensor, near: torch.Tensor, far: torch.Tensor, what: str) -> None:
    """`actual` is strictly closer (max |diff|) to `near` than to `far`: it follows `near`."""
    to_near = (actual.float() - near.float()).abs().max().item()
    to_far = (actual.float() - far.float()).abs().max().item()
    if not to_near < to_far:
        raise OutputMismatch(f"{what}: max |diff| {to_near:.3e} to the expected side, {to_far:.3e} to the other")


def argmax_index(diff: torch.Tensor) -> tuple[int, ...]:
    flat = int(diff.argmax())
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
