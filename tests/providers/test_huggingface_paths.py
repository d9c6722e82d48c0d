"""A local Hugging Face model whose weights are missing fails with one clear error
naming the path, not a transformers traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.integrations.huggingface_model import HuggingFaceModel

pytest.importorskip("transformers")


def test_missing_weights_directory_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"model_path './weights': no such directory"
    ) as info:
        HuggingFaceModel("my-model", model_path="./weights")
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_a_directory_without_weights_names_the_path(tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        HuggingFaceModel("my-model", model_path=str(empty))
    message = str(info.value)
    assert f"model_path {str(empty)!r}: no usable model in that directory" in message
    assert len(message.splitlines()) == 1
