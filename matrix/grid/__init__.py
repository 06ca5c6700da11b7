"""The compatibility matrix itself: adapters saved under one PEFT/transformers pair, loaded under others.

- `cells`: the cells of cells.toml (beside it), with one-line errors for bad entries;
- `releases`: the package index's release history; `refresh`: the released cells made from it;
- `envs`: one uv environment per cell, and running `python -m matrix` in one;
- `produce` / `consume`: what runs inside a cell's environment: making artifacts, judging them;
- `manifest`: an artifact folder's manifest (versions, case, sha256 of every file);
- `runner`: `matrix run`, scheduling every stage of every cell by dependency;
- `report/`: matrix.json, matrix.md and matrix.html;
- `legacy`: the artifacts older releases saved, kept in tests/legacy and judged by every run;
- `commands`: run, report, cells, legacy, produce, consume, produce-consume.
"""
