"""kernels.hashing: the NumPy reference (the served runtime's hash), its Numba CPU twin and the spec."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.hashing import (
    hash_buckets,
    hash_bytes,
    hash_bytes_cpu,
    hash_bytes_reference,
    hash_strings,
    strings_to_buffer,
)


def spec_hash(value: str, seed: int) -> int:
    """The documented hash, written out byte by byte in plain Python."""
    h = (0x811C9DC5 ^ (seed & 0xFFFFFFFF)) & 0xFFFFFFFF
    for b in value.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def random_strings(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = [chr(c) for c in range(32, 127)] + list("éüßçñ日本語中文한국어ДЖЯ🙂🚀\u0301")
    out = ["", "a", " ", "\x00", "a\x00b", "🙂" * 40]
    for _ in range(n - len(out)):
        k = int(rng.integers(0, 48))
        out.append("".join(rng.choice(alphabet, size=k)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2**31 + 5])
def test_reference_follows_the_documented_hash(seed):
    values = random_strings(200, 1)
    got = hash_bytes_reference(*strings_to_buffer(values), seed)
    assert got.dtype == np.uint32
    assert got.tolist() == [spec_hash(v, seed) for v in values]


@pytest.mark.parametrize("seed", [0, 17])
def test_cpu_twin_equals_reference_on_random_unicode_and_empty_strings(seed):
    data, offsets = strings_to_buffer(random_strings(3000, seed))
    np.testing.assert_array_equal(hash_bytes_cpu(data, offsets, seed), hash_bytes_reference(data, offsets, seed))


def test_cpu_twin_reads_arrow_int32_offsets_that_do_not_start_at_zero():
    data, offsets = strings_to_buffer(random_strings(500, 3))
    sliced = offsets[100:301].astype(np.int32)  # values 100..299 of the buffer, as an Arrow slice
    np.testing.assert_array_equal(hash_bytes_cpu(data, sliced, 9), hash_bytes_reference(data, offsets, 9)[100:300])


def test_the_seed_changes_the_hash():
    data, offsets = strings_to_buffer(random_strings(100, 4))
    assert (hash_bytes_cpu(data, offsets, 0) != hash_bytes_cpu(data, offsets, 1)).mean() > 0.95


def test_no_values_give_an_empty_result():
    assert hash_bytes_cpu(np.zeros(0, np.uint8), np.zeros(1, np.int64)).shape == (0,)
    assert hash_bytes_reference(np.zeros(0, np.uint8), np.zeros(1, np.int64)).shape == (0,)


def test_dispatcher_runs_the_cpu_twin_for_numpy_arrays():
    data, offsets = strings_to_buffer(["x", "y"])
    out = hash_bytes(data, offsets, 2)
    assert isinstance(out, np.ndarray) and out.tolist() == [spec_hash("x", 2), spec_hash("y", 2)]


def test_buckets_are_in_range_and_spread_evenly():
    values = [f"merchant-{i}" for i in range(32000)]
    b = hash_buckets(*strings_to_buffer(values), n_buckets=16)
    assert b.min() >= 0 and b.max() < 16
    counts = np.bincount(b, minlength=16)
    assert counts.min() > 0.9 * 2000 and counts.max() < 1.1 * 2000


def test_hash_strings_accepts_bytes_like_str():
    assert hash_strings(["héllo", b"h\xc3\xa9llo"]).tolist() == [spec_hash("héllo", 0)] * 2


def test_bad_layout_is_rejected():
    with pytest.raises(ValueError, match="uint8"):
        hash_bytes_cpu(np.zeros(3, np.int64), np.array([0, 3]))
