"""Across versions: the compatibility matrix (issue "compatibility matrix"; not built yet).

Adapters saved under one PEFT/transformers pair and loaded under every other will live here,
reusing `strategies` for the cases and `prefixcheck` for running and comparing them.
"""
