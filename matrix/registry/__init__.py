"""The known-issue registry across releases (the registry itself is prefixcheck.registry).

- `axes`: the two axes of released cells an entry is measured along;
- `witnesses`: the example each entry is measured on;
- `measure`: an entry's verdict per release, by bisection or by sweeping every release;
- `scripts`: the reproduction scripts, each written in the environment of a release measured bad;
- `upstream`: docs/upstream, a report ready to file for every entry this suite found;
- `commands`: `bisect --registry` and `upstream-script`.
"""
