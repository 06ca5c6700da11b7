"""Across versions: the compatibility matrix.

`cells.toml` names the PEFT/transformers pairs; `cellwork` produces and consumes artifacts inside
one cell's environment; `manifest` writes and verifies artifact folders; `report` renders the
grid; `python -m matrix` orchestrates (see README, "The compatibility matrix").
"""
