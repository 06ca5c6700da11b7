"""`python -m matrix cells --refresh` (matrix/grid/releases.py): the release history read from the
package index, the two axes made from it, and the rewrite of matrix/grid/cells.toml.

The index answers are recorded (tests/selftest/data/releases/, PyPI's simple JSON API trimmed to a
few versions each), so nothing here touches the network; the probe is faked except in the tests
of the probe script itself, which run it in this environment.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest

from matrix.grid import cells as cells_mod
from matrix.grid import refresh, releases
from matrix.grid.releases import Release, ReleasesError

pytestmark = pytest.mark.selftest

DATA = Path(__file__).with_name("data") / "releases"


@pytest.fixture(autouse=True)
def _pypi(monkeypatch):
    """Every test asks the default index (PyPI), whatever the shell running the tests names."""
    for var in releases.INDEX_VARIABLES:
        monkeypatch.delenv(var, raising=False)


def recorded(url: str) -> dict:
    """The recorded simple-API answer for the package named in `url`."""
    package = url.rstrip("/").rsplit("/", 1)[1]
    return json.loads((DATA / f"{package}.json").read_text())


def with_files(*files: dict):
    """The recorded index plus `files` (filename, upload-time, yanked) on their package's page."""

    def fetch(url: str) -> dict:
        page = recorded(url)
        package = page["name"]
        page["files"] += [f for f in files if f["filename"].startswith(f"{package}-")]
        return page

    return fetch


def works(cell: dict) -> None:
    return None


@pytest.fixture
def cells_copy(tmp_path):
    """The repository's cells file, to rewrite."""
    path = tmp_path / "cells.toml"
    shutil.copy(cells_mod.CELLS_FILE, path)
    return path


@pytest.fixture
def unmarked(tmp_path):
    """The cells file as it was before the first refresh (no markers; six hand-pinned released
    cells, numpy<2 on two), to rewrite."""
    path = tmp_path / "unmarked" / "cells.toml"
    path.parent.mkdir()
    shutil.copy(DATA / "cells-before-refresh.toml", path)
    return path


def pairs(cells: list[dict]) -> dict[str, tuple[str, str, str]]:
    return {c["name"]: (c["peft"], c["transformers"], c["accelerate"]) for c in cells}


# --- the release history ---------------------------------------------------------------------


def test_history_holds_final_releases_only_ascending_by_version_with_the_first_upload():
    peft = releases.release_history("peft", fetch=recorded)
    # 0.9.0 sorts first (a string sort would put it last); 0.18.0rc0 is a pre-release
    assert [r.version for r in peft] == ["0.9.0", "0.10.0", "0.11.0", "0.11.1", "0.21.0", "0.21.1", "0.21.2"]
    # the wheel went up before the sdist: the release time is the first file's
    assert peft[1] == Release("0.10.0", "2024-03-21T10:17:35.652491Z")
    tf = [r.version for r in releases.release_history("transformers", fetch=recorded)]
    assert "4.46.0" not in tf and "4.46.1" in tf  # 4.46.0 is yanked on PyPI
    assert "5.0.0rc0" not in tf and "5.0.0" in tf
    assert "0.30.0rc0" not in [r.version for r in releases.release_history("accelerate", fetch=recorded)]


def test_a_yanked_or_pre_release_is_never_what_a_user_got():
    tf = releases.release_history("transformers", fetch=recorded)
    # the day after the yanked 4.46.0 came out, a user still got the newest good one
    assert releases.newest_before(tf, "2024-10-25").version == "4.41.2"
    accelerate = releases.release_history("accelerate", fetch=recorded)
    # 0.30.0rc0 went up 36 s before 0.30.0; between them a user got 0.28.0
    assert releases.newest_before(accelerate, "2024-05-03T14:36:10Z").version == "0.28.0"


def test_newest_before_compares_times_not_days_and_versions_not_upload_order():
    tf = releases.release_history("transformers", fetch=recorded)
    # 4.41.0 went up on 2024-05-17 at 16:28: at noon that day 4.40.2 was the newest
    assert releases.newest_before(tf, "2024-05-17T12:00:00Z").version == "4.40.2"
    assert releases.newest_before(tf, "2024-05-17T16:28:24.727617Z").version == "4.41.0"  # "at or before"
    late_patch = [*tf, Release("4.40.3", "2030-01-01T00:00:00Z")]
    assert releases.newest_before(late_patch, "2031-01-01").version == "5.24.0"
    with pytest.raises(ReleasesError, match="no release uploaded by 2000-01-01"):
        releases.newest_before(tf, "2000-01-01")


def test_latest_patches_takes_the_highest_patch_of_every_minor_from_the_minimum():
    history = [Release(v, "2024-01-01T00:00:00Z") for v in ["4.39.3", "4.40.0", "4.40.2", "4.40.10", "4.41.0", "5.0.1"]]
    assert [r.version for r in releases.latest_patches(history, "4.40")] == ["4.40.10", "4.41.0", "5.0.1"]


def test_versions_between_is_inclusive_and_names_a_version_that_is_not_a_release():
    got = releases.versions_between("transformers", "4.40.0", "4.46.1", fetch=recorded)
    assert got == ["4.40.0", "4.40.2", "4.41.0", "4.41.2", "4.46.1"]
    for missing in ("4.46.0", "4.40.1", "5.0.0rc0"):  # yanked, never released, a pre-release
        with pytest.raises(ReleasesError) as caught:
            releases.versions_between("transformers", "4.40.0", missing, fetch=recorded)
        message = str(caught.value)
        assert f"transformers {missing} is not a final release" in message and "\n" not in message
    with pytest.raises(ReleasesError, match="comes after"):
        releases.versions_between("transformers", "4.46.1", "4.40.0", fetch=recorded)


# --- the index ----------------------------------------------------------------------------------


def test_an_unreachable_index_is_one_line_naming_its_url(monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on: the connection is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    with pytest.raises(ReleasesError) as caught:
        releases.release_history("peft")
    message = str(caught.value)
    assert message.startswith(f"http://127.0.0.1:{port}/simple/peft/: cannot reach the package index")
    assert "\n" not in message


def test_a_failing_or_odd_fetch_is_one_line_too():
    def broken(url):
        raise OSError("Name or service not known\nsecond line")

    with pytest.raises(ReleasesError, match=r"^https://pypi.org/simple/peft/: cannot read peft's releases") as caught:
        releases.release_history("peft", fetch=broken)
    assert "\n" not in str(caught.value)
    with pytest.raises(ReleasesError, match="no 'files' list"):
        releases.release_history("peft", fetch=lambda url: {"meta": {}})


def test_the_index_comes_from_the_environment_when_set(monkeypatch):
    assert releases.project_url("PEFT") == "https://pypi.org/simple/peft/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/pypi/simple")
    assert releases.project_url("peft") == "https://mirror.example/pypi/simple/peft/"
    monkeypatch.setenv("UV_INDEX_URL", "https://uv.example/simple/")
    assert releases.project_url("peft") == "https://uv.example/simple/peft/"


def test_one_fetch_per_package_for_a_whole_generation():
    asked = []

    def counting(url):
        asked.append(url)
        return recorded(url)

    refresh.generate_cells(fetch=counting, probe=works)
    assert sorted(asked) == [releases.project_url(p) for p in ("accelerate", "peft", "transformers")]


# --- the cells ----------------------------------------------------------------------------------


def test_the_suite_minimums_come_from_pyproject():
    assert (releases.stack_minimum("peft"), releases.stack_minimum("transformers")) == ("0.10", "4.40")


def test_the_peft_axis_has_every_minor_with_the_transformers_of_its_day():
    cells = pairs(refresh.generate_cells(fetch=recorded))
    # 0.10.0 came out with 4.39.0, under the suite's 4.40 minimum: it gets 4.40's latest patch;
    # 0.11.1 went up hours before 4.41.0; 0.21.2 the day after 5.18.0. accelerate: the newest at
    # the later of the two uploads (4.40.2's for 0.10.0: 0.30.0, where 0.10.0's day gives 0.28.0)
    assert cells["peft-0.10.0"] == ("0.10.0", "4.40.2", "0.30.0")
    assert cells["peft-0.11.1"] == ("0.11.1", "4.40.2", "0.30.1")
    assert cells["peft-0.21.2"] == ("0.21.2", "5.18.0", "1.15.0")
    assert not {"peft-0.9.0", "peft-0.11.0", "peft-0.21.0", "peft-0.21.1"} & set(cells)


def test_the_transformers_axis_pairs_the_newest_peft_with_every_minor():
    cells = refresh.generate_cells(fetch=recorded)
    axis = {c["name"]: c["transformers"] for c in cells if c["peft"] == "0.21.2"}
    assert axis == {
        "peft-0.21.2": "5.18.0",  # the PEFT axis names this pair; no peft-0.21.2-tf-5.18 besides it
        "peft-0.21.2-tf-4.40": "4.40.2",
        "peft-0.21.2-tf-4.41": "4.41.2",
        "peft-0.21.2-tf-4.46": "4.46.1",
        "peft-0.21.2-tf-4.57": "4.57.6",
        "peft-0.21.2-tf-5.0": "5.0.0",
        "peft-0.21.2-tf-5.23": "5.23.0",
        "peft-latest": "5.24.0",
    }
    assert [c["name"] for c in cells if c.get("known_good")] == ["peft-0.21.2-tf-5.23"]
    assert len({(c["peft"], c["transformers"]) for c in cells}) == len(cells)
    # the axis judges its own and the anchors' artifacts; the PEFT axis and the anchors judge all
    consumes = {c["name"]: c.get("consumes") for c in cells}
    anchors = ["peft-latest", "peft-0.21.2-tf-5.23"]
    assert {n for n, c in consumes.items() if c} == {n for n in axis if "-tf-" in n and n != anchors[1]}
    assert all(c in (None, anchors) for c in consumes.values())
    # ... is judged by the anchors only and draws no Hypothesis cases: the grid's time budget
    for cell in cells:
        if cell.get("consumes"):
            assert (cell["judged_by"], cell["drawn"]) == (anchors, 0), cell["name"]
        else:
            assert "judged_by" not in cell and "drawn" not in cell, cell["name"]


def test_the_known_good_cell_keeps_its_pins_when_a_newer_patch_of_its_minor_appears():
    newer = {"filename": "transformers-5.23.1-py3-none-any.whl", "upload-time": "2026-11-14T00:00:00Z", "yanked": False}
    cells = refresh.generate_cells(fetch=with_files(newer))
    good = [c for c in cells if c.get("known_good")]
    assert pairs(good) == {"peft-0.21.2-tf-5.23": ("0.21.2", "5.23.0", "1.15.0")}
    assert pairs(cells)["peft-0.21.2-tf-5.23.1"] == ("0.21.2", "5.23.1", "1.15.0")


def test_peft_latest_is_a_peft_axis_cell_when_the_newest_peft_is_the_newest_upload():
    newest = {"filename": "peft-0.22.0-py3-none-any.whl", "upload-time": "2026-11-28T00:00:00Z", "yanked": False}
    cells = pairs(refresh.generate_cells(fetch=with_files(newest)))
    assert cells["peft-latest"] == ("0.22.0", "5.24.0", "1.15.0")
    assert "peft-0.22.0" not in cells and "peft-0.22.0-tf-5.24" not in cells
    assert cells["peft-0.22.0-tf-5.23"][:2] == ("0.22.0", "5.23.0")
    assert cells["peft-0.21.2-tf-5.23"] == ("0.21.2", "5.23.0", "1.15.0")  # known good, outside both axes now


def test_extra_pins_come_from_the_rules_and_reach_the_cells(monkeypatch):
    assert all(len(rule) == 4 and rule[3].strip() and "\n" not in rule[3] for rule in releases.EXTRA_RULES)
    rule = ("<0.12", ">=4.40,<4.41", ("numpy<2", "tokenizers<0.20"), "pretend: old tokenizers build on numpy 1")
    monkeypatch.setattr(releases, "EXTRA_RULES", (rule, rule))
    assert releases.extras_for("0.10.0", "4.40.2") == ["numpy<2", "tokenizers<0.20"]  # once each
    assert releases.extras_for("0.12.0", "4.40.2") == releases.extras_for("0.10.0", "4.41.0") == []
    extra = {c["name"]: c.get("extra") for c in refresh.generate_cells(fetch=recorded)}
    assert extra["peft-0.10.0"] == ["numpy<2", "tokenizers<0.20"] and extra["peft-0.21.2-tf-4.40"] is None


# --- the rewrite ----------------------------------------------------------------------------------


def blocks(text: str) -> dict[str, str]:
    """Each `[[cell]]` table's text (with the comment lines right above it), by cell name."""
    out = {}
    for chunk in re.split(r"\n(?=(?:#[^\n]*\n)*\[\[cell\]\])", text):
        name = re.search(r'^name = "([^"]+)"', chunk, re.M)
        if name and "[[cell]]" in chunk:
            out[name.group(1)] = chunk[chunk.index("[[cell]]") :].split("\n# ")[0].rstrip("\n")
    return out


def test_the_first_refresh_replaces_the_released_cells_and_keeps_everything_else(unmarked):
    before = unmarked.read_text()
    assert refresh.BEGIN not in before
    old = cells_mod.load(unmarked)
    summary = refresh.refresh(unmarked, fetch=recorded, probe=works)
    after = unmarked.read_text()
    new = cells_mod.load(unmarked)
    assert after.startswith(before[: before.index("[[cell]]")])  # the header
    hand_made = [c.name for c in old if c.needs or c.device != "cpu"]
    assert hand_made and all(blocks(before)[n] in after for n in hand_made)
    for name in hand_made:  # with the comment above each, byte for byte
        comment = before[: before.index(blocks(before)[name])].rsplit("\n\n", 1)[-1]
        assert comment + blocks(before)[name] in after
    assert blocks(before)["peft-0.21.2-tf-5.23"] in after  # the known-good pin, byte for byte
    assert new.known_good() == old.known_good()
    assert {"peft-0.13.2", "peft-0.15.2", "peft-0.17.1"}.isdisjoint(c.name for c in new)
    assert after.count(refresh.BEGIN) == 1 and after.count(refresh.END) == 1
    assert after.index(refresh.BEGIN) < after.index("[[cell]]") and after.index(refresh.END) < after.index(
        blocks(before)[hand_made[0]]
    )
    assert "10 released cells" in summary and "4 hand-made cells untouched" in summary


def test_the_known_good_pins_are_never_regenerated(cells_copy):
    """Pins the generator would not choose (an older accelerate, an extra) survive every refresh:
    tox.ini pins the same, and a refresh must not split them."""
    text = cells_copy.read_text()
    good = blocks(text)["peft-0.21.2-tf-5.23"]
    hand_pinned = good.replace('accelerate = "1.15.0"', 'accelerate = "1.14.0"\nextra = ["numpy<3"]')
    cells_copy.write_text(text.replace(good, hand_pinned))
    refresh.refresh(cells_copy, fetch=recorded, probe=works)
    refresh.refresh(cells_copy, fetch=recorded, probe=works)
    assert hand_pinned in cells_copy.read_text()
    assert cells_mod.load(cells_copy).known_good().extra == ("numpy<3",)


def test_refresh_is_idempotent_and_later_refreshes_touch_only_the_region(cells_copy):
    refresh.refresh(cells_copy, fetch=recorded, probe=works)
    once = cells_copy.read_text()
    refresh.refresh(cells_copy, fetch=recorded, probe=works)
    assert cells_copy.read_text() == once
    outside = once.split(refresh.END)[1]
    newer = {"filename": "transformers-5.25.0-py3-none-any.whl", "upload-time": "2026-11-28T00:00:00Z", "yanked": False}
    refresh.refresh(cells_copy, fetch=with_files(newer), probe=works)
    moved = cells_copy.read_text()
    assert moved.split(refresh.END)[1] == outside and moved.split(refresh.BEGIN)[0] == once.split(refresh.BEGIN)[0]
    latest = cells_mod.load(cells_copy).get("peft-latest")
    assert latest.transformers == "5.25.0"
    assert cells_mod.load(cells_copy).get("peft-0.21.2-tf-5.24").transformers == "5.24.0"


def test_the_refreshed_file_is_what_the_cells_self_test_wants(tmp_path, monkeypatch):
    """test_matrix's own check of the cells file, run on a refreshed copy (beside tox.ini's copy)."""
    path = tmp_path / "matrix" / "grid" / "cells.toml"
    path.parent.mkdir(parents=True)
    shutil.copy(cells_mod.CELLS_FILE, path)
    shutil.copy(cells_mod.CELLS_FILE.parents[2] / "tox.ini", tmp_path / "tox.ini")
    refresh.refresh(path, fetch=recorded, probe=works)
    monkeypatch.setattr(cells_mod, "CELLS_FILE", path)
    monkeypatch.setattr(cells_mod.load, "__defaults__", (path,))
    from tests.selftest.test_matrix import test_the_cells_file_is_valid_and_tox_pins_the_known_good_cell as check

    check()


def test_a_failed_probe_is_recorded_as_one_line_and_the_cell_skipped(cells_copy):
    def probe(cell):
        if cell["transformers"] == "4.41.2":
            return "install: Because peft==0.21.2 depends on transformers>=4.46\nand you require transformers==4.41.2"
        if cell["transformers"] == "4.40.2" and cell["peft"] == "0.21.2":
            site = "/home/me/envs/peft-0.21.2-tf-4.40/lib/python3.11/site-packages"
            return f"import: ImportError: cannot import name 'X' from 'transformers' ({site}/transformers/__init__.py)"
        if cell.get("known_good"):
            return "forward: RuntimeError: a pretend failure"
        return None

    summary = refresh.refresh(cells_copy, fetch=recorded, probe=probe)
    cells = cells_mod.load(cells_copy)
    reason = "install: Because peft==0.21.2 depends on transformers>=4.46 and you require transformers==4.41.2"
    assert cells.get("peft-0.21.2-tf-4.41").unavailable == reason
    assert cells.get("peft-0.21.2-tf-4.41").runnable() == f"unavailable with these pins: {reason}"
    # the same on every machine: no env path in the file
    assert cells.get("peft-0.21.2-tf-4.40").unavailable == (
        "import: ImportError: cannot import name 'X' from 'transformers' (transformers/__init__.py)"
    )
    unavailable = [c.name for c in cells if c.unavailable]
    assert unavailable == ["peft-0.21.2-tf-4.40", "peft-0.21.2-tf-4.41"]  # the known good stays as it is
    assert cells.get("peft-0.21.2-tf-4.41").consumes == () and cells.get("peft-0.21.2-tf-4.46").consumes
    assert "WARNING: the known-good cell peft-0.21.2-tf-5.23 failed its probe" in summary
    assert "2 unavailable" in summary and "peft-0.21.2-tf-4.41 (install: Because" in summary


def test_without_a_probe_recorded_reasons_stay_for_the_same_pins(cells_copy):
    refresh.refresh(cells_copy, fetch=recorded, probe=lambda c: "import: broken" if c["peft"] == "0.10.0" else None)
    probed = cells_copy.read_text()
    refresh.refresh(cells_copy, fetch=recorded)  # --no-probe
    assert cells_copy.read_text() == probed
    assert cells_mod.load(cells_copy).get("peft-0.10.0").unavailable == "import: broken"


def test_a_broken_region_or_nothing_to_replace_is_refused(cells_copy, unmarked):
    text = cells_copy.read_text()
    cells_copy.write_text(text + "\n" + refresh.BEGIN + "\n")
    with pytest.raises(ReleasesError, match="expected one"):
        refresh.refresh(cells_copy, fetch=recorded, probe=works)
    text = unmarked.read_text()
    hand_made_only = text[: text.index("[[cell]]")] + text[text.index("# The known-good pair on a GPU") :]
    hand_made_only += '\n[[cell]]\nname = "pinned"\npeft = "0.21.2"\ntransformers = "5.23.0"\n'
    hand_made_only += 'accelerate = "1.15.0"\nknown_good = true\ndevice = "cpu"\n'
    cells_copy.write_text(hand_made_only)
    with pytest.raises(ReleasesError, match="no markers and no released cells"):
        refresh.refresh(cells_copy, fetch=recorded, probe=works)


def test_a_hand_made_known_good_cell_stays_outside_and_its_pair_is_not_generated_again(cells_copy):
    refresh.refresh(cells_copy, fetch=recorded, probe=works)
    text = cells_copy.read_text()
    good = blocks(text)["peft-0.21.2-tf-5.23"]
    moved = text.replace(good + "\n\n", "") + "\n" + good + "\n"
    cells_copy.write_text(moved)
    refresh.refresh(cells_copy, fetch=recorded, probe=works)
    cells = cells_mod.load(cells_copy)
    assert [c.name for c in cells if (c.peft, c.transformers, c.device) == ("0.21.2", "5.23.0", "cpu")] == [
        "peft-0.21.2-tf-5.23"
    ]


# --- the probe ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, reason",
    [
        (
            "  × No solution found when resolving dependencies:\n"
            "  ╰─▶ Because peft==0.21.2 depends on transformers>=4.46 and you require transformers==4.41.2, we can"
            " conclude that your requirements are unsatisfiable.\n\n      hint: pass --verbose",
            "install: Because peft==0.21.2 depends on transformers>=4.46 and you require transformers==4.41.2, we can"
            " conclude that your requirements are unsatisfiable.",
        ),
        ("noise\nPROBE-FAILED forward: TypeError: bad\n", "forward: TypeError: bad"),
        (
            'Traceback (most recent call last):\n  File "x.py", line 1\n    import numpy\n    ^^^^^\n'
            "ImportError: numpy.core.multiarray failed to import\n",
            "ImportError: numpy.core.multiarray failed to import",
        ),
        ("", "failed without output"),
    ],
)
def test_a_failure_reason_is_the_line_that_says_why(output, reason):
    assert refresh._reason(output) == reason


def test_the_probe_script_passes_here_and_names_a_version_mismatch():
    """This environment holds the known-good pair: the script must pass on it (or every cell would
    be recorded unavailable) and must fail, saying why, when the versions are not the cell's."""
    import peft
    import transformers

    cell = cells_mod.Cell("here", peft.__version__, transformers.__version__, "0")
    assert refresh._run_probe(Path(sys.executable), cell) is None
    wrong = cells_mod.Cell("here", "0.10.0", transformers.__version__, "0")
    assert refresh._run_probe(Path(sys.executable), wrong) == (
        f"import: RuntimeError: peft {peft.__version__} installed, 0.10.0 wanted"
    )


# --- the nightly's grid, from the index at run time (matrix/grid/live.py) ----------------------
NEWEST_PEFT = {"filename": "peft-0.22.0-py3-none-any.whl", "upload-time": "2026-11-28T00:00:00Z", "yanked": False}
NEWEST_TF = {"filename": "transformers-5.25.0-py3-none-any.whl", "upload-time": "2026-12-01T00:00:00Z", "yanked": False}


def test_the_grid_from_the_index_is_todays_releases_and_the_baseline_is_untouched(cells_copy):
    from matrix.grid import live

    before = cells_copy.read_text()
    grid = live.from_index(cells_copy, fetch=with_files(NEWEST_PEFT, NEWEST_TF))
    assert cells_copy.read_text() == before  # the committed file stays the reviewed baseline
    got = {c.name: (c.peft, c.transformers) for c in grid.cells}
    assert got["peft-latest"] == ("0.22.0", "5.25.0")  # "latest" is the newest release of each
    # the unreleased cells pin their other side to the newest release: they follow it
    assert got["peft-main"][1] == got["peft-pr"][1] == "5.25.0"
    assert got["transformers-main"][0] == "0.22.0"
    assert got["peft-0.21.2-tf-5.23"] == ("0.21.2", "5.23.0")  # known good: never regenerated
    assert {"peft-latest", "peft-main", "peft-pr", "transformers-main"} <= set(grid.moved)
    assert grid.new and all(name not in before for name in grid.new)


def test_the_grid_file_loads_as_cells_and_says_where_it_came_from(cells_copy, tmp_path):
    from datetime import datetime, timezone

    from matrix.grid import live

    made = datetime(2026, 12, 7, 3, 17, tzinfo=timezone.utc)
    grid = live.from_index(cells_copy, fetch=with_files(NEWEST_PEFT, NEWEST_TF), now=made)
    path = live.write(grid, tmp_path / "nightly" / "grid.toml")
    assert [c.name for c in cells_mod.load(path)] == [c.name for c in grid.cells]
    source = cells_mod.source(path)
    assert source["source"] == "package index" and source["made"] == "2026-12-07T03:17:00Z"
    assert source["new"] == list(grid.new) and source["moved"] == list(grid.moved)
    assert cells_mod.source(cells_mod.CELLS_FILE) is None  # the committed grid records no source


def test_with_no_new_release_the_grid_is_the_baseline(cells_copy):
    from matrix.grid import live

    refresh.refresh(cells_copy, fetch=recorded, probe=None)
    grid = live.from_index(cells_copy, fetch=recorded)
    assert (grid.new, grid.moved) == ((), ())
    assert [(c.name, c.peft, c.transformers) for c in grid.cells] == [
        (c.name, c.peft, c.transformers) for c in cells_mod.load(cells_copy)
    ]


def test_an_unreadable_grid_record_is_one_line_not_a_report_without_marks(tmp_path):
    bad = tmp_path / "grid.toml"
    bad.write_text("[grid\n")
    with pytest.raises(cells_mod.CellError, match="grid.toml: cannot read the grid's record"):
        cells_mod.source(bad)


def test_cells_from_index_writes_the_grid_and_an_unreachable_index_is_exit_2(tmp_path, monkeypatch, capsys):
    from matrix.grid import commands, live

    monkeypatch.setattr(live.refresh, "regenerate", lambda *a, **k: (_ for _ in ()).throw(ReleasesError("x: down")))
    assert commands.index_grid(tmp_path / "grid.toml") is None
    assert "error: the grid from the package index: x: down" in capsys.readouterr().err
    assert not (tmp_path / "grid.toml").exists()
