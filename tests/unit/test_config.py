"""Config composition: defaults, overrides, and one-line errors naming the key."""
import pytest

from engine.config import compose, expand_sweep, to_container
from engine.errors import ConfigError


def test_defaults_compose_to_typed_config():
    cfg = compose([])
    assert cfg.data.source.value == "synthetic"
    assert cfg.backend.name.value == "auto"
    assert isinstance(cfg.data.rows, int)


def test_override_changes_value():
    cfg = compose(["data.rows=123", "backend=cpu"])
    assert cfg.data.rows == 123
    assert cfg.backend.name.value == "cpu"


@pytest.mark.parametrize(
    "override, words",
    [
        ("data.foo=1", ["data.foo", "DataConfig"]),
        ("data.rows=abc", ["data.rows", "Integer"]),
        ("backend=tpu", ["backend", "auto, cpu, gpu"]),
        ("backend.name=tpu", ["backend.name", "auto, cpu, gpu"]),
        ("data.task=multiclass", ["data.task", "binary, regression"]),
        ("nokey=3", ["nokey"]),
    ],
)
def test_bad_config_is_one_line_naming_key(override, words):
    with pytest.raises(ConfigError) as err:
        compose([override])
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_sweep_expansion_is_cartesian():
    jobs = expand_sweep(["data.rows=10,20", "seed=1,2", "backend=cpu"])
    assert len(jobs) == 4
    assert ["data.rows=10", "seed=1", "backend=cpu"] in jobs


def test_to_container_writes_enums_as_names():
    c = to_container(compose(["backend=cpu"]))
    assert c["backend"]["name"] == "cpu"
