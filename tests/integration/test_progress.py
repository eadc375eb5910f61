"""Progress bars on a terminal: the run's stages, silenced by --quiet."""
import os
import pty
import subprocess
import sys

from tests.conftest import REPO


def _run_on_tty(args, cwd):
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=cwd, stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_stages_show_a_progress_bar_on_a_terminal(tmp_path):
    rc, out = _run_on_tty(["run", "data.rows=500", "until=profile", "tracking=off", "backend=cpu"], tmp_path)
    assert rc == 0, out[-2000:]
    assert "stage 2/3: validate" in out and "stage 3/3: profile" in out


def test_quiet_silences_bars_and_logs(tmp_path):
    rc, out = _run_on_tty(["-q", "run", "data.rows=500", "until=profile", "tracking=off", "backend=cpu"], tmp_path)
    assert rc == 0
    assert "stage" not in out and "INFO" not in out
