"""The ``trident`` command as a user runs it: help, bad configs, exit codes, no tracebacks."""
import pytest


def test_help_lists_every_command(trident):
    res = trident("--help")
    assert res.returncode == 0
    for cmd in ("run", "reproduce", "serve", "deploy", "rollback", "predict", "monitor"):
        assert cmd in res.stdout


@pytest.mark.parametrize("cmd", ["run", "reproduce", "serve", "deploy", "rollback", "predict", "monitor"])
def test_every_command_has_help(trident, cmd):
    res = trident(cmd, "--help")
    assert res.returncode == 0 and "usage: trident " + cmd in res.stdout


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.rows=abc", "data.rows"),
        ("data.nope=1", "data.nope"),
        ("backend=tpu", "available: auto, cpu, gpu"),
        ("data.task=ranking", "expected one of [binary, regression]"),
    ],
)
def test_bad_config_stops_at_start_with_one_line(trident, override, expected):
    res = trident("run", override)
    assert res.returncode == 2
    lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    assert not (trident.cwd / "runs").exists()


def test_verbose_shows_the_traceback(trident):
    res = trident("run", "--verbose", "data.rows=abc")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_reproduce_unknown_run_is_a_clean_error(trident):
    res = trident("reproduce", "no-such-run")
    assert res.returncode == 2 and "no run 'no-such-run'" in res.stderr and "Traceback" not in res.stderr


def test_bad_sweep_value_fails_before_any_run(trident):
    res = trident("run", "-m", "data.rows=10,abc", "tracking=off")
    assert res.returncode == 2 and "data.rows" in res.stderr
    assert not (trident.cwd / "runs").exists()


def test_sweep_runs_once_per_combination(trident):
    res = trident("run", "-m", "data.rows=300,400", "until=validate", "tracking=off", "backend=cpu")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "sweep: 2 run(s)" in res.stdout
    import json

    rows = sorted(json.loads((p / "manifest.json").read_text())["datasets"]["raw"]["rows"]
                  for p in (trident.cwd / "runs").iterdir())
    assert rows == [300, 400]
