"""toxfile.py: TORCH_WHEELS and PEFT_SPEC / TRANSFORMERS_SPEC parsing, with one-line errors."""

from __future__ import annotations

import pytest

import toxfile  # noqa: E402  (the project root is on sys.path under pytest)

pytestmark = pytest.mark.selftest


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0.21.2", "peft==0.21.2"),
        ("0.22.0.dev0", "peft==0.22.0.dev0"),
        (">=0.20", "peft>=0.20"),
        ("peft==0.17.1", "peft==0.17.1"),
        (
            "git+https://github.com/huggingface/peft@refs/pull/1/head",
            "peft @ git+https://github.com/huggingface/peft@refs/pull/1/head",
        ),
    ],
)
def test_peft_specs_become_requirements(spec, expected):
    assert toxfile.requirement("peft", spec) == expected


def test_a_local_checkout_becomes_a_file_url(tmp_path):
    assert toxfile.requirement("peft", str(tmp_path)) == f"peft @ {tmp_path.resolve().as_uri()}"


@pytest.mark.parametrize("spec", ["banana", "", "./no/such/checkout", "peft[=1"])
def test_unknown_specs_fail_with_one_line(spec):
    with pytest.raises(toxfile.SpecError) as info:
        toxfile.requirement("peft", spec)
    assert "\n" not in str(info.value) and "peft" in str(info.value)


def test_torch_comes_from_the_pytorch_cpu_index_by_default():
    assert toxfile.torch_source_env(None) == {"UV_INDEX": f"pytorch-cpu={toxfile.PYTORCH_CPU_INDEX}"}


def test_torch_from_a_wheel_folder(tmp_path):
    assert toxfile.torch_source_env(str(tmp_path)) == {"UV_FIND_LINKS": str(tmp_path.resolve())}


def test_torch_from_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(toxfile.SpecError, match="TORCH_WHEELS"):
        toxfile.torch_source_env(str(tmp_path / "nope"))


def test_peft_pr_without_peft_spec_is_refused(monkeypatch):
    monkeypatch.delenv("PEFT_SPEC", raising=False)
    with pytest.raises(toxfile.SpecError, match="PEFT_SPEC"):
        toxfile._pr_requirements()
