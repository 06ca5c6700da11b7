"""Across versions: the compatibility matrix, bisecting, the registry's life across releases, and CI.

- `grid`: the cells (cells.toml, generated from the package index: refresh, releases), their
  environments (envs), what runs inside each (produce, consume, manifest), the scheduler
  (runner), the report (report/) and the adapters kept from older releases (legacy);
- `bisect`: the pure search (search), its inputs and plan, evaluation in each version's
  environment (evaluate, and probe, what runs there), the report (report, draft), and the
  nightly's bisect of new failures (new_failures);
- `registry`: the known-issue registry across releases: measuring entries' bounds along the axes
  (axes, witnesses, measure), the upstream reports and their scripts (upstream, scripts);
- `ci`: what changed between runs (diff), the nightly's tracking issue (tracking), PR validation
  (validate, pr_spec);
- `cli`: the one command line, `python -m matrix`; each subpackage's `commands` module holds its
  commands (docs/compatibility-matrix.md, docs/bisect/README.md, docs/ci.md).
"""
