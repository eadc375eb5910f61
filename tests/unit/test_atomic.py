"""Atomic writes leave either the old file or the complete new one, never a partial file."""
import json

import numpy as np
import pytest

from engine import atomic


def test_write_json_roundtrip(tmp_path):
    p = atomic.write_json(tmp_path / "a" / "x.json", {"b": 1, "a": np.float32(0.5), "arr": np.arange(3)})
    assert json.loads(p.read_text()) == {"a": 0.5, "arr": [0, 1, 2], "b": 1}


def test_failed_writer_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def boom(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        atomic.write_npz(tmp_path / "a.npz", {"x": np.array(["a", None], dtype=object)})


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    p = tmp_path / "b.bin"
    data = np.random.default_rng(0).bytes(3_000_000)
    p.write_bytes(data)
    assert atomic.sha256_file(p) == hashlib.sha256(data).hexdigest()
