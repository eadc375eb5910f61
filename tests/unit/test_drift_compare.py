"""compare(): drift statistics of new data against a sketch, checked against scipy.stats."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from engine.errors import DataError
from engine.monitor import MonitorConfig, compare, fit_reference

N = 5000


def _frame(rng, n=N, shift=0.0, p=(0.5, 0.3, 0.2), corr=0.8, a_missing=0.05):
    base = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "a": rng.normal(shift, 1.0, n),
            "u": base,
            "v": corr * base + np.sqrt(1 - corr**2) * rng.normal(size=n),
            "i": rng.integers(0, 10, n).astype(np.float64),
            "color": rng.choice(["red", "green", "blue"], n, p=list(p)),
        }
    )
    df.loc[rng.random(n) < a_missing, "a"] = np.nan
    return df


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(np.random.default_rng(0))


@pytest.fixture(scope="module")
def sketch(reference):
    # integer column: edges between the values, so the binned KS is exact
    return fit_reference(reference, edges={"i": np.arange(-0.5, 10.0, 1.0)})


def test_same_distribution_does_not_drift(sketch):
    rep = compare(sketch, _frame(np.random.default_rng(1)))
    assert not rep.drifted and rep.n_drifted == 0 and rep.n_features == 5


def test_shifted_feature_drifts_alone(sketch):
    rep = compare(sketch, _frame(np.random.default_rng(2), shift=0.7))
    assert rep.drifted_features == ["a"]
    assert rep.numeric["a"].reasons[0].startswith("psi")
    assert rep.numeric["a"].mean_shift == pytest.approx(0.7, abs=0.1)


def test_numeric_statistics_match_scipy(sketch, reference):
    cur = _frame(np.random.default_rng(3), shift=0.3)
    rep = compare(sketch, cur)
    ref_i, cur_i = reference["i"].to_numpy(), cur["i"].to_numpy()
    d = rep.numeric["i"]
    assert d.ks == pytest.approx(stats.ks_2samp(ref_i, cur_i).statistic, abs=1e-12)
    centres = np.arange(10.0)
    ref_c = np.bincount(ref_i.astype(int), minlength=10)
    cur_c = np.bincount(cur_i.astype(int), minlength=10)
    assert d.wasserstein == pytest.approx(stats.wasserstein_distance(centres, centres, ref_c, cur_c), rel=1e-10)
    assert d.js == pytest.approx(jensenshannon(ref_c, cur_c, base=2), rel=1e-10)
    a = rep.numeric["a"]
    assert a.mean_cur == pytest.approx(cur["a"].mean(), rel=1e-12)
    assert a.std_cur == pytest.approx(cur["a"].std(), rel=1e-9)
    assert a.missing_cur == pytest.approx(cur["a"].isna().mean())


def test_exact_ks_on_request_lies_within_the_binned_bounds(sketch, reference):
    cur = _frame(np.random.default_rng(4), shift=0.2)
    d = compare(sketch, cur, exact_ks=True, reference=reference).numeric["a"]
    exact = stats.ks_2samp(reference["a"].dropna(), cur["a"].dropna()).statistic
    assert d.ks_exact == pytest.approx(exact, abs=1e-12)
    assert d.ks <= d.ks_exact <= d.ks_upper


def test_exact_ks_needs_the_reference(sketch):
    with pytest.raises(DataError, match="reference"):
        compare(sketch, _frame(np.random.default_rng(5)), exact_ks=True)


def test_categorical_chi2_is_the_two_sample_test_with_new_and_vanished(sketch, reference):
    rng = np.random.default_rng(6)
    cur = _frame(rng, p=(0.6, 0.4, 0.0))
    cur.loc[:39, "color"] = "purple"
    d = compare(sketch, cur).categorical["color"]
    cats = ["red", "green", "blue", "purple"]
    table = np.array([[(reference["color"] == c).sum() for c in cats], [(cur["color"] == c).sum() for c in cats]])
    res = stats.chi2_contingency(table, correction=False)
    assert d.chi2 == pytest.approx(res.statistic, rel=1e-10) and d.chi2_pvalue == pytest.approx(res.pvalue, rel=1e-6, abs=1e-300)
    assert d.new_categories == {"purple": 40}
    assert d.vanished_categories == ["blue"]
    assert d.js == pytest.approx(jensenshannon(table[0], table[1], base=2), rel=1e-10)
    assert d.drifted


def test_missing_rate_change_is_drift_on_its_own(sketch):
    d = compare(sketch, _frame(np.random.default_rng(7), a_missing=0.3)).numeric["a"]
    assert d.drifted and d.psi < 0.2 and "missing rate" in d.reasons[0]
    assert d.missing_change == pytest.approx(0.25, abs=0.03)


def test_correlation_shift_is_reported(sketch):
    rep = compare(sketch, _frame(np.random.default_rng(8), corr=0.0))
    assert rep.correlation.pair in (["u", "v"], ["v", "u"])
    assert rep.correlation.max_abs_diff == pytest.approx(0.8, abs=0.05)
    assert rep.correlation.drifted and rep.drifted


def test_chunks_and_dask_partitions_give_the_same_report_as_one_frame(sketch):
    import dask
    import dask.dataframe as dd

    cur = _frame(np.random.default_rng(9), shift=0.1)
    whole = compare(sketch, cur).to_dict()
    chunked = compare(sketch, [cur.iloc[i : i + 1300] for i in range(0, N, 1300)]).to_dict()
    with dask.config.set(scheduler="synchronous"):
        parted = compare(sketch, dd.from_pandas(cur, npartitions=3)).to_dict()
    for other in (chunked, parted):
        for name, d in whole["numeric"].items():
            for k in ("psi", "ks", "wasserstein", "mean_cur", "std_cur", "missing_cur"):
                assert other["numeric"][name][k] == pytest.approx(d[k], rel=1e-9, abs=1e-12), (name, k)
        assert other["categorical"] == whole["categorical"]
        assert other["correlation"]["max_abs_diff"] == pytest.approx(whole["correlation"]["max_abs_diff"], abs=1e-9)


def test_generator_of_chunks_is_read_once(sketch):
    cur = _frame(np.random.default_rng(10))
    rep = compare(sketch, (cur.iloc[i : i + 1000] for i in range(0, N, 1000)))
    assert rep.n_rows_current == N


def test_matrix_of_numeric_features_is_accepted():
    rng = np.random.default_rng(11)
    sk = fit_reference(rng.normal(size=(3000, 3)))
    rep = compare(sk, rng.normal(size=(2000, 3)).astype(np.float32))
    assert sk.numeric == ["x0", "x1", "x2"] and rep.n_features == 3 and not rep.drifted


def test_verdict_follows_configured_method_and_threshold(sketch):
    cur = _frame(np.random.default_rng(12), shift=0.15)
    loose = compare(sketch, cur, config=MonitorConfig(numeric_method="ks", ks_threshold=0.5)).numeric["a"]
    tight = compare(sketch, cur, config=MonitorConfig(numeric_method="ks", ks_threshold=0.01)).numeric["a"]
    assert (loose.drifted, tight.drifted) == (False, True)
    assert tight.method == "ks" and tight.statistic == tight.ks


def test_missing_column_is_named(sketch, reference):
    with pytest.raises(DataError, match=r"\['color'\] not found"):
        compare(sketch, reference.drop(columns=["color"]))


def test_report_exports_to_json_and_frame(sketch, tmp_path):
    rep = compare(sketch, _frame(np.random.default_rng(13)))
    json.dumps(rep.to_dict())
    frame = rep.to_frame()
    assert list(frame.index) == ["a", "u", "v", "i", "color"]
    assert {"psi", "js", "ks", "chi2_pvalue", "drifted"} <= set(frame.columns)
    assert json.loads(rep.save(tmp_path / "drift.json").read_text())["n_features"] == 5


def test_default_yaml_matches_the_schema():
    from omegaconf import OmegaConf

    from engine.config.loader import conf_dir

    yaml = OmegaConf.load(conf_dir() / "monitor" / "default.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(MonitorConfig), yaml)
    assert OmegaConf.to_object(merged) == MonitorConfig()


def test_report_of_features_with_different_bin_and_category_counts_equals_the_per_feature_definitions():
    """The report computes every feature's statistics in one vectorised call over zero-padded rows;
    each value must equal the scalar definition on that feature's own bins / categories."""
    from engine.monitor.metrics import chi2_two_sample, jensen_shannon, ks_binned, psi, wasserstein_binned
    from engine.monitor.stats import collect

    rng = np.random.default_rng(11)

    def frame(n, shift):
        return pd.DataFrame({
            "wide": rng.normal(shift, 1.0, n),
            "narrow": rng.integers(0, 4, n).astype(np.float64) + (shift > 0),
            "gone": np.where(rng.random(n) < 0.5, np.nan, rng.gamma(2.0, 1.0, n)),
            "few": rng.choice(["x", "y"], n),
            "many": rng.choice([f"m{i}" for i in range(12 + 4 * (shift > 0))], n),
        })

    ref, cur = frame(3000, 0.0), frame(2000, 0.4)
    sk = fit_reference(ref, edges={"narrow": np.arange(-0.5, 4.0, 1.0)})
    assert len({sk.nbins(j) for j in range(len(sk.numeric))}) > 1  # bins really differ between features
    cfg = MonitorConfig()
    rep = compare(sk, cur, cfg)
    st = collect(cur, sk.spec(), cfg.chunk_rows)
    for j, name in enumerate(sk.numeric):
        nb = sk.nbins(j)
        p, q = sk.counts[j, :nb], st.numeric.counts[j, :nb]
        d = rep.numeric[name]
        assert d.psi == pytest.approx(psi(p, q, cfg.psi_epsilon), rel=1e-12)
        assert d.js == pytest.approx(jensen_shannon(p, q), rel=1e-12)
        assert d.wasserstein == pytest.approx(wasserstein_binned(p, q, sk.centres(j)), rel=1e-12)
        assert (d.ks, d.ks_upper) == pytest.approx(ks_binned(p, q), rel=1e-12)
    for name in ("few", "many"):
        d = rep.categorical[name]
        cats = list(sk.categories[name]) + list(d.new_categories)
        table = np.array([[(ref[name] == c).sum() for c in cats], [(cur[name] == c).sum() for c in cats]])
        res = stats.chi2_contingency(table, correction=False)
        assert d.chi2 == pytest.approx(res.statistic, rel=1e-10)
        assert d.chi2_pvalue == pytest.approx(res.pvalue, rel=1e-6, abs=1e-300) and d.chi2_dof == res.dof
        assert (d.chi2, d.chi2_pvalue, d.chi2_dof) == pytest.approx(chi2_two_sample(table[0], table[1]), rel=1e-12)
        assert d.psi == pytest.approx(psi(table[0], table[1], cfg.psi_epsilon), rel=1e-12)
        assert d.js == pytest.approx(jensenshannon(table[0], table[1], base=2), rel=1e-10)
    assert set(rep.categorical["many"].new_categories) == {f"m{i}" for i in range(12, 16)}


def test_small_batches_look_categories_up_in_a_dict_with_the_same_result_as_the_index(monkeypatch):
    from engine.monitor import stats as st

    vocab = pd.Index(["b", "a", "7", "z"], dtype=object)
    for uniques in (pd.Index(["a", "q", "z", "7", "r"]), pd.Index(["7", "b"], dtype=object), pd.Index([], dtype=object)):
        fast = st._lookup(uniques, vocab)
        monkeypatch.setattr(st, "DICT_LOOKUP_MAX", -1)
        slow = st._lookup(uniques, vocab)
        monkeypatch.undo()
        assert np.array_equal(fast[0], slow[0]) and fast[1] == slow[1]
    codes, unseen = st._lookup(pd.Index(["a", "q", "z", "r"]), vocab)
    assert codes.tolist() == [1, 4, 3, 5, -1] and unseen == ["q", "r"]
