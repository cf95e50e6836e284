"""import fusedrnn explains a missing or mismatched build instead of failing obscurely."""

import json
import re

import pytest
import torch

from fusedrnn import _loader


def test_missing_library_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "PACKAGE_DIR", tmp_path)
    with pytest.raises(ImportError, match="never built.*pip install --no-build-isolation"):
        _loader.load_library()


def test_library_built_for_another_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "PACKAGE_DIR", tmp_path)
    (tmp_path / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "_build_info.json").write_text(json.dumps({"torch_version": "1.0.0"}))
    expected = re.escape(f"built against torch 1.0.0, but torch {torch.__version__}")
    with pytest.raises(ImportError, match=expected):
        _loader.load_library()


def test_unloadable_library_is_an_import_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_loader, "PACKAGE_DIR", tmp_path)
    (tmp_path / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not a shared object")
    with pytest.raises(ImportError, match="failed to load"):
        _loader.load_library()


def test_every_op_has_a_cpu_kernel():
    for op in ["lstm_layer", "gru_layer", "rnn_layer", "lstm_cell", "gru_cell", "rnn_cell"]:
        for name in (op, op + "_backward"):
            assert _loader.has_kernel(name, "CPU"), name
