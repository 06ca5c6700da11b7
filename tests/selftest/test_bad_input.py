"""Bad input gets a clear one-line error naming the thing, and never silently passes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from prefixcheck.artifacts import ArtifactError, inside, load_json, load_tensors, read_adapter
from prefixcheck.case import Case, CaseError

pytestmark = pytest.mark.selftest


@pytest.fixture
def adapter(tmp_path):
    save_file({"prompt_embeddings": torch.ones(2, 8)}, str(tmp_path / "adapter_model.safetensors"))
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    return tmp_path


def _one_line(exc: BaseException, *names: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    for name in names:
        assert name in text, text


def test_a_good_adapter_reads(adapter):
    config, tensors = read_adapter(adapter)
    assert config["peft_type"] == "PREFIX_TUNING" and tensors["prompt_embeddings"].shape == (2, 8)


def test_truncated_safetensors(adapter):
    path = adapter / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError) as info:
        read_adapter(adapter)
    _one_line(info.value, "adapter_model.safetensors", "not a readable safetensors file")


def test_corrupted_header(adapter):
    path = adapter / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:20] = b"{{{{garbage!"
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as info:
        read_adapter(adapter)
    _one_line(info.value, "adapter_model.safetensors")


def test_nan_in_a_tensor(adapter):
    save_file({"prompt_embeddings": torch.tensor([[1.0, float("nan")]])}, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(ArtifactError) as info:
        read_adapter(adapter)
    _one_line(info.value, "prompt_embeddings", "NaN")


def test_missing_config(adapter):
    (adapter / "adapter_config.json").unlink()
    with pytest.raises(ArtifactError) as info:
        read_adapter(adapter)
    _one_line(info.value, "adapter_config.json", "missing")


def test_config_that_is_not_json(adapter):
    (adapter / "adapter_config.json").write_text("{not json")
    with pytest.raises(ArtifactError) as info:
        load_json(adapter / "adapter_config.json")
    _one_line(info.value, "adapter_config.json", "not valid JSON")


def test_pickle_only_adapters_are_refused(adapter):
    (adapter / "adapter_model.safetensors").unlink()
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ArtifactError) as info:
        read_adapter(adapter)
    _one_line(info.value, "pickle", "safetensors only")


@pytest.mark.parametrize("escape", ["../outside.json", "/etc/passwd", "a/../../x"])
def test_paths_that_escape_the_artifact_folder(adapter, escape):
    with pytest.raises(ArtifactError) as info:
        inside(adapter, escape)
    _one_line(info.value, "escapes the artifact folder")


def test_missing_tensor_file(tmp_path):
    with pytest.raises(ArtifactError) as info:
        load_tensors(tmp_path / "nothing.safetensors")
    _one_line(info.value, "nothing.safetensors", "missing")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "does not parse"),
        ('{"task": "CAUSAL_LM"}', "not a case description"),
        (
            '{"model": {"arch": "llama", "num_layers": 1, "layout": {"hidden_size": 8, "num_heads": 3, '
            '"num_kv_heads": 2, "head_dim": 4}}, "task": "CAUSAL_LM", "prefix": {"num_virtual_tokens": 1}}',
            "does not divide",
        ),
        (
            '{"model": {"arch": "llama", "num_layers": 1, "layout": {"hidden_size": 8, "num_heads": 2, '
            '"num_kv_heads": 2, "head_dim": 4}}, "task": "CHAT", "prefix": {"num_virtual_tokens": 1}}',
            "unknown task type",
        ),
    ],
)
def test_bad_case_descriptions(text, message):
    with pytest.raises(CaseError, match=message):
        Case.from_json(text)


def test_matrix_archs_naming_an_unknown_architecture(monkeypatch, capsys):
    from matrix.cli import main as matrix_main

    monkeypatch.setenv("MATRIX_ARCHS", "llama,lamma")
    assert matrix_main(["produce", "--out", "unused", "--drawn", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MATRIX_ARCHS names unknown architectures ['lamma']" in err


def test_matrix_archs_keeps_only_the_named_architectures(monkeypatch):
    from matrix.grid import produce

    monkeypatch.setenv("MATRIX_ARCHS", "llama, bart")
    assert {c.model.arch for c in produce.pinned_cases()} == {"llama", "bart"}
    monkeypatch.delenv("MATRIX_ARCHS")
    assert {c.model.arch for c in produce.pinned_cases()} > {"llama", "bart"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "no-such-folder"], "no-such-folder: no such results folder"),
        (["run", "--cells", "peft-0.17.1,nope", "--out", "unused"], "unknown cell 'nope'"),
    ],
)
def test_matrix_cli_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    from matrix.cli import main as matrix_main

    monkeypatch.chdir(tmp_path)
    assert matrix_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
