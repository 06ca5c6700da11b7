"""The engine: how one prefix-tuning case is built, trained, saved, reloaded and compared.

Modules: `case` (the records), `architectures` (tiny configs), `engine` (torch work),
`compare` (the tolerance table), `artifacts` (safe reading), `known_issues` (the registry),
`outcomes` (judging and counting), `repro` (standalone scripts), `versions` (what is installed).
Importing the package is cheap; `prefixcheck.engine` pulls in torch, transformers and peft.
"""
