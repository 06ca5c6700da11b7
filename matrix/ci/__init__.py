"""What CI reports: the change between two runs, the nightly's tracking issue, PR validation.

- `diff`: results read, failures keyed by signature (never by counts), what changed;
- `tracking`: the tracking issue (GitHub REST), the step outputs;
- `validate`: one PEFT build against a baseline, only the difference;
- `pr_spec`: the PEFT_SPEC of a pull request;
- `commands`: diff, track, validate, pr-spec.
"""
