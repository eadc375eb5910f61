"""``python -m bench train`` on a tiny data set: one table row per binary candidate, each with a real AUC."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.train import registry

REPO = Path(__file__).resolve().parents[2]


def _table(out: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the plain-text table the suite prints."""
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    return cells[0], cells[1:]


def test_suite_prints_one_row_per_binary_candidate_with_auc_above_chance():
    proc = subprocess.run([sys.executable, "-m", "bench", "train", "--rows", "2000", "--features", "5",
                           "--n-jobs", "1", "--no-write"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    header, body = _table(proc.stdout)
    names = [row[header.index("candidate")] for row in body]
    assert sorted(names) == registry.available()  # every registered candidate builds for binary
    assert {"logistic", "random_forest", "hist_gbdt", "trident_gbdt"} <= set(names)
    for row in body:
        auc = float(row[header.index("ROC AUC")])
        assert 0.5 < auc <= 1.0, f"{row[0]}: ROC AUC {auc}"
