"""Speed of the suite: each property's median cost per example against the bare engine cost of
the same cases, in one process, plus pytest-xdist scaling on this machine.

    python bench/benchmark.py                 # per-property table (about a minute)
    python bench/benchmark.py --xdist         # also time the property suite with -n 0 / -n 2
    python bench/benchmark.py --json out.json

"Bare engine" = build, train, save, reload and one forward pass on both sides
(`prefixcheck.engine.roundtrip` + logits): what any property has to pay at least.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

t0 = time.perf_counter()
from hypothesis import Phase, given, settings  # noqa: E402

from prefixcheck import compare, engine, properties, records  # noqa: E402
from prefixcheck.case import SECOND_ADAPTER  # noqa: E402
from prefixcheck.runner import run_property  # noqa: E402
from strategies import cases, prefix_specs  # noqa: E402
from tests.properties._common import tasks_of  # noqa: E402

IMPORT_S = time.perf_counter() - t0

# Every property of prefixcheck/properties.py that runs on this machine's CPU.
PROPERTIES = {p.name: p for p in properties.ALL if not p.cuda}
SECOND = prefix_specs(adapter_name=SECOND_ADAPTER)


RECORDER = records.Recorder()  # keeps benchmark runs out of any summary


def body_of(prop: str):
    def run(case):
        context = {"second": SECOND.example()} if prop == "multi-adapter" else {}
        try:
            run_property(prop, case, recorder=RECORDER, **context)
        except Exception:  # a failing example still costs what it costs; the suite judges it, not this
            pass

    return run


def draw(n: int, **kwargs) -> list:
    out = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None)
    @given(case=cases(**kwargs))
    def collect(case):
        out.append(case)

    collect()
    return out[:n]


def timed(fn, *args) -> float:
    gc.collect()  # no collection of an earlier example's garbage inside this one's time
    start = time.perf_counter()
    try:
        fn(*args)
    except Exception:  # a known issue or a failure costs time all the same; correctness is the suite's job
        pass
    return time.perf_counter() - start


def bare(case) -> float:
    def run():
        with engine.scratch() as d:
            trained, reloaded = engine.roundtrip(case, d)
            engine.logits(reloaded, trained.batch)
            trained.reference  # noqa: B018

    return timed(run)


def weighted_median(pairs: list[tuple[float, float]]) -> float:
    """The value at half the total weight of (value, weight) pairs."""
    pairs = sorted(pairs)
    half, seen = sum(w for _, w in pairs) / 2, 0.0
    for value, weight in pairs:
        seen += weight
        if seen >= half:
            return value
    raise ValueError("no values")


def per_property(n: int) -> dict:
    os.environ["PREFIXCHECK_REPORTS"] = str(ROOT / "reports" / "bench")
    rows = {}
    for prop, declared in PROPERTIES.items():
        body = body_of(prop)
        kwargs = {"task": "CAUSAL_LM", "min_batch": 2} if declared.generative_only else {}
        if prop == "dtype-roundtrip":
            kwargs.update(dtype="float32", device="cpu")
        if prop == "input-paths":  # as tests/properties/test_input_paths.py draws them: a right-padded row
            kwargs.update(padded=True, padding_side="right", min_batch=2)
        sample = draw(n, **kwargs)
        prop_s, bare_s = [], []
        for i, c in enumerate(sample):  # each case through both, alternating which goes first
            if i % 2:
                bare_s.append(bare(c))
                prop_s.append(timed(body, c))
            else:
                prop_s.append(timed(body, c))
                bare_s.append(bare(c))
        rows[prop] = {
            "examples": len(sample),
            "median_s": statistics.median(prop_s),
            "bare_median_s": statistics.median(bare_s),
            "ratio": statistics.median(prop_s) / statistics.median(bare_s),
            "all_s": prop_s,
            "bare_all_s": bare_s,
        }
        print(
            f"  {prop:22s} median {rows[prop]['median_s']:.3f} s  bare {rows[prop]['bare_median_s']:.3f} s  "
            f"ratio {rows[prop]['ratio']:.2f}",
            flush=True,
        )
    return rows


def decoder_only_end_to_end(n: int) -> float:
    sample = draw(n, task="CAUSAL_LM")
    return statistics.median(timed(body_of("reload-equality"), c) for c in sample)


def xdist_scaling() -> dict:
    """The property suite (ci profile) in one process and on 2 workers. The architecture discovery
    is cached per versions and runs once in either case (in the xdist controller): it is done
    first, outside the timings, so neither run pays it and the other not."""
    out = {}
    env = {**os.environ, "HYPOTHESIS_PROFILE": "ci", "PREFIXCHECK_REPORTS": str(ROOT / "reports" / "bench")}
    start = time.perf_counter()
    warm = "from prefixcheck.architectures import discovery; discovery.result()"
    subprocess.run([sys.executable, "-c", warm], cwd=ROOT, env=env, capture_output=True, check=True)
    out["discovery"] = time.perf_counter() - start
    print(f"  architecture discovery (cached afterwards): {out['discovery']:.1f} s", flush=True)
    for workers in ("0", "2"):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "tests/properties", "-q", "-n", workers, "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
        )
        out[f"n={workers}"] = time.perf_counter() - start
        print(f"  pytest tests/properties -n {workers}: {out[f'n={workers}']:.1f} s wall", flush=True)
    out["speedup"] = out["n=0"] / out["n=2"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--examples", type=int, default=6, help="examples per property (default 6)")
    parser.add_argument("--xdist", action="store_true", help="also time the suite with -n 0 and -n 2")
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args()

    from prefixcheck.versions import installed

    print(f"versions: {installed()}")
    print(f"import of torch+transformers+peft+suite: {IMPORT_S:.1f} s (once per process / xdist worker)")
    print("per property (median per example vs bare engine on the same cases):")
    rows = per_property(args.examples)
    all_prop = [t for r in rows.values() for t in r["all_s"]]
    all_bare = [t for r in rows.values() for t in r["bare_all_s"]]
    suite_ratio = statistics.median(all_prop) / statistics.median(all_bare)
    # the same case through the property and through the bare engine: the ratio per example, then
    # the median over every example of every property (pairing removes the spread of case sizes)
    paired = statistics.median(p / b for p, b in zip(all_prop, all_bare, strict=True))
    # ... and weighted as the suite runs them: a property's share of the suite's examples is its
    # test items (one per task) times its cost (Trainer properties draw half as many examples)
    weighted = weighted_median(
        [
            (p / b, len(tasks_of(name)) * PROPERTIES[name].cost / len(r["all_s"]))
            for name, r in rows.items()
            for p, b in zip(r["all_s"], r["bare_all_s"], strict=True)
        ]
    )
    e2e = decoder_only_end_to_end(args.examples)
    print(
        f"suite per-example median {statistics.median(all_prop):.3f} s vs bare {statistics.median(all_bare):.3f} s: "
        f"ratio of medians {suite_ratio:.2f}; median of paired ratios {paired:.2f}"
    )
    print(
        f"suite cost per example, properties weighted as the suite runs them: median paired ratio {weighted:.2f} "
        "(target <= 1.3)"
    )
    print(f"decoder-only example end to end (reload-equality, CAUSAL_LM): median {e2e:.3f} s (target <= 0.5)")
    figures = {
        "versions": installed(),
        "import_s": IMPORT_S,
        "properties": rows,
        "suite_ratio": suite_ratio,
        "suite_paired_ratio": paired,
        "suite_weighted_ratio": weighted,
        "decoder_only_median_s": e2e,
    }
    print("tolerance headroom (largest |diff| that passed, per tolerance entry, on these clean runs):")
    for reason, (seen, atol) in sorted(compare.OBSERVED.items()):
        print(f"  {seen:.2e} of atol {atol:.0e} ({seen / atol:.1%}): {reason[:90]}")
    figures["tolerance_headroom"] = {r: {"max_seen": s, "atol": a} for r, (s, a) in compare.OBSERVED.items()}
    if args.xdist:
        print("pytest-xdist scaling (ci profile):")
        figures["xdist"] = xdist_scaling()
        print(f"  speedup with 2 workers: {figures['xdist']['speedup']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
