"""Bisecting: the last good and first bad release (or PEFT commit) for one failing example.

- `search`: the pure search over verdicts (no I/O), `Verdict`, `BisectError`;
- `inputs`: cases, ranges, commit ranges, a square's row, read and checked;
- `plan`: what moves, what is fixed, the environment (a matrix cell) each version gets;
- `evaluate`: building a version's environment and running the probe there;
- `probe`: what runs inside it: one example judged as the suite judges it, or one artifact consumed;
- `report`, `draft`: the upstream-ready report, and a registry entry drafted for a new failure;
- `new_failures`: the nightly's bisect of each new failure of a diff;
- `commands`: bisect, bisect-new, probe.
"""
