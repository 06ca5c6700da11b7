"""The engine: how one prefix-tuning case is built, trained, saved, reloaded and judged (no pytest inside).

- what a case is: `case` (the frozen records), `pinned` (the fixed cases every run holds),
  `architectures/` (curated tiny configs, the generic recipe and its overrides, run-time discovery);
- what is claimed: `properties` (each property's steps and claims, as data) and `checks/` (the
  claims' bodies, by what they look at: saved, outputs, generation, inputs, training; needing only
  torch, transformers and PEFT, so a reproduction script carries them verbatim);
- doing the work: `engine` (build, train, save, reload, forward, generate), `trainer` (the
  Trainer runs), `artifacts` (safe reading: safetensors and JSON, never pickles);
- comparing: `compare` (the one tolerance table), `mismatch` (how two outputs disagree);
- judging: `verdicts` (every verdict word, once), `example` (one example's steps and claims, and
  what it judged), `registry/` (the known-issue registry: schema, facts, judge, measured bounds,
  table, CLI, and the TOML and measured JSON), `runner` (an example judged by the registry,
  recorded and raised, as the suite runs it);
- reporting: `records` (what happened to each example), `coverage` (the axes a run reached),
  `summary` (summary.json, built in one function), `repro` (standalone reproduction scripts);
- the installation: `versions` (what is installed and what it can do), `compat` (3.10 fallbacks).

Importing the package is cheap; `prefixcheck.engine` pulls in torch, transformers and peft.
"""
