"""A seeded synthetic credit-default dataset: the built-in default data of ``trident run``.

Each applicant has a hidden creditworthiness that drives the observed behaviour columns (delinquencies,
utilisation, credit inquiries); the target ``default`` comes from a logistic model of the observed
columns plus that hidden part, then a share of labels is flipped. A well-fitted model reaches a ROC AUC
of about 0.8. The data carries what real credit data carries: numeric columns with heavy tails and
outliers, low- and high-cardinality categoricals, a date, values missing completely at random and at
random given other columns, sensitive attributes (``gender``, ``age``) and a proxy of gender (``title``).

``drifted=True`` gives a "later" dataset for monitoring: applications a year later, lower incomes,
higher utilisation, a mix of purposes shifted towards debt consolidation, a share of applicants from
postcodes never seen before, more missing incomes and a higher default rate.

Everything is vectorised NumPy; categorical columns are pandas ``category`` columns built from codes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["make_credit", "COLUMNS", "SENSITIVE", "PROXIES"]

#: Sensitive attributes and the columns that act as a proxy for them.
SENSITIVE = ("gender", "age")
PROXIES = {"title": "gender"}

GENDERS = ["female", "male"]
TITLES = ["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx"]
#: P(title | gender); rows follow GENDERS, columns follow TITLES.
_TITLE_GIVEN_GENDER = np.array([[0.00, 0.40, 0.34, 0.19, 0.05, 0.02],
                                [0.93, 0.00, 0.00, 0.00, 0.05, 0.02]])
REGIONS = ["north_east", "north_west", "yorkshire", "east_midlands", "west_midlands", "east", "london",
           "south_east", "south_west", "wales", "scotland", "northern_ireland"]
_REGION_P = np.array([0.04, 0.11, 0.08, 0.07, 0.09, 0.09, 0.16, 0.14, 0.08, 0.05, 0.07, 0.02])
_REGION_PREFIX = ["NE", "NW", "YO", "EM", "WM", "EA", "LN", "SE", "SW", "WA", "SC", "NI"]
_POSTCODES_PER_REGION = 42  # 12 x 42 = 504 postcodes in the reference data
HOME = ["rent", "mortgage", "own", "family", "other"]
PURPOSES = ["debt_consolidation", "car", "home_improvement", "education", "medical", "business",
            "wedding", "holiday", "furniture", "other"]
_PURPOSE_P = np.array([0.22, 0.18, 0.14, 0.07, 0.05, 0.07, 0.04, 0.06, 0.07, 0.10])
_PURPOSE_P_DRIFTED = np.array([0.36, 0.14, 0.10, 0.06, 0.06, 0.07, 0.03, 0.04, 0.06, 0.08])
_PURPOSE_EFFECT = np.array([0.30, -0.15, -0.20, 0.10, 0.25, 0.40, 0.05, 0.20, 0.00, 0.05])
_PURPOSE_LOAN = np.array([0.10, 0.20, 0.30, 0.05, -0.40, 0.50, -0.10, -0.60, -0.50, -0.30])
EMPLOYMENT = ["permanent", "temporary", "self_employed", "part_time", "unemployed", "retired"]
#: P(employment type | age band): bands <25, 25-61, >=62.
_EMPLOYMENT_GIVEN_AGE = np.array([[0.45, 0.25, 0.05, 0.17, 0.08, 0.00],
                                  [0.62, 0.09, 0.13, 0.10, 0.05, 0.01],
                                  [0.25, 0.04, 0.12, 0.08, 0.03, 0.48]])
_EMPLOYMENT_EFFECT = np.array([-0.20, 0.30, 0.20, 0.10, 0.70, 0.00])
_EMPLOYMENT_INCOME = np.array([0.00, -0.20, 0.05, -0.55, -1.20, -0.45])
#: P(home ownership | age band).
_HOME_GIVEN_AGE = np.array([[0.55, 0.08, 0.02, 0.32, 0.03],
                            [0.33, 0.42, 0.13, 0.08, 0.04],
                            [0.15, 0.25, 0.52, 0.04, 0.04]])
_HOME_EFFECT = np.array([0.20, -0.15, -0.30, 0.10, 0.15])
N_EMPLOYERS = 1000
LOAN_TERMS = np.array([12, 24, 36, 48, 60, 72])

#: Column order of the generated frame.
COLUMNS = ["application_id", "application_date", "age", "gender", "title", "region", "postcode",
           "home_ownership", "employment_type", "employer", "employment_years", "income", "loan_amount",
           "loan_term_months", "purpose", "debt", "credit_history_months", "n_open_accounts",
           "n_delinquencies", "n_inquiries_6m", "utilisation", "default"]

#: Intercept of the default model, set so the reference default rate is about 0.2 after label noise.
_INTERCEPT = -2.05
_DRIFT_INTERCEPT = 0.25
_LABEL_NOISE = 0.03


def _sample_by_group(rng: np.random.Generator, group: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Draw one code per row from the categorical distribution ``table[group[i]]`` (rows sum to 1)."""
    cdf = np.cumsum(table, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(group.shape[0])
    out = np.zeros(group.shape[0], dtype=np.int16)
    for k in range(table.shape[1] - 1):  # loop over levels (a handful), not rows
        out += u >= cdf[group, k]
    return out


def _sample(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1).astype(np.int16)


def _categorical(codes: np.ndarray, categories: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int16), categories=pd.Index(categories, dtype="str"))


def _missing(rng: np.random.Generator, values: np.ndarray, rate: np.ndarray | float) -> np.ndarray:
    """Float copy of ``values`` with NaN where a uniform draw falls under ``rate`` (scalar or per row)."""
    out = values.astype(np.float64)
    out[rng.random(out.shape[0]) < rate] = np.nan
    return out


def make_credit(rows: int = 20000, seed: int = 0, drifted: bool = False) -> pd.DataFrame:
    """Generate ``rows`` synthetic credit applications with a binary ``default`` target.

    Parameters
    ----------
    rows : int
        Number of applications.
    seed : int
        Seed; the same ``(rows, seed, drifted)`` always gives the same frame.
    drifted : bool
        Produce the "later" dataset (shifted distributions and default rate, dated after the reference).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: ``application_id`` (unique int64), ``application_date`` (datetime64),
        11 numeric columns (float64, NaN where missing), 8 categoricals (``category`` dtype;
        ``employer`` has ~1,000 levels and ``postcode`` ~500) and ``default`` (int8, 0/1).

    Examples
    --------
    >>> df = make_credit(1000, seed=1)
    >>> df.shape
    (1000, 22)
    >>> bool(df["application_id"].is_unique)
    True
    """
    n = int(rows)
    if n < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1 if drifted else 0, 0x7C3D]))

    # --- dates and ids: ids increase with the application date --------------------------------
    start = np.datetime64("2025-01-01" if drifted else "2023-01-01", "s")
    span_days = 365 if drifted else 731
    offsets = np.sort(rng.integers(0, span_days * 86400, size=n))
    dates = (start + offsets.astype("timedelta64[s]")).astype("datetime64[ns]")
    ids = np.arange(n, dtype=np.int64) + (900_000_000 if drifted else 100_000_000)

    # --- people ------------------------------------------------------------------------------
    gender = (rng.random(n) < 0.51).astype(np.int16)  # 0 female, 1 male
    title = _sample_by_group(rng, gender, _TITLE_GIVEN_GENDER)
    age = 18.0 + rng.gamma(3.2 if drifted else 4.0, 5.5, size=n)
    age = np.minimum(np.floor(age), 85.0)
    band = np.where(age < 25, 0, np.where(age < 62, 1, 2))
    latent = rng.standard_normal(n)  # hidden creditworthiness (higher = riskier)

    region = _sample(rng, n, _REGION_P)
    # each region owns 42 postcodes with a skewed popularity; drifted data brings a new set
    within_p = 1.0 / (np.arange(_POSTCODES_PER_REGION) + 3.0)
    within = _sample(rng, n, within_p).astype(np.int32)
    postcode_idx = region.astype(np.int32) * _POSTCODES_PER_REGION + within
    n_postcodes = len(REGIONS) * _POSTCODES_PER_REGION
    if drifted:
        new = rng.random(n) < 0.35
        postcode_idx = np.where(new, postcode_idx + n_postcodes, postcode_idx)
    pc_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x50C0DE]))
    postcode_effect = pc_rng.normal(0.0, 0.35, size=2 * n_postcodes)
    region_income = pc_rng.normal(0.0, 0.12, size=len(REGIONS))
    region_income[REGIONS.index("london")] = 0.25
    # reference postcodes are <prefix>00..41, the drifted set adds <prefix>50..91
    postcode_names = [f"{_REGION_PREFIX[(i % n_postcodes) // _POSTCODES_PER_REGION]}"
                      f"{i % _POSTCODES_PER_REGION + (50 if i >= n_postcodes else 0):02d}"
                      for i in range(2 * n_postcodes)]

    employment = _sample_by_group(rng, band, _EMPLOYMENT_GIVEN_AGE)
    home = _sample_by_group(rng, band, _HOME_GIVEN_AGE)
    purpose = _sample(rng, n, _PURPOSE_P_DRIFTED if drifted else _PURPOSE_P)

    emp_w = 1.0 / (np.arange(N_EMPLOYERS) + 8.0) ** 1.05
    employer = _sample(rng, n, emp_w).astype(np.int32)
    emp_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE3B0]))
    employer_effect = emp_rng.normal(0.0, 0.25, size=N_EMPLOYERS)
    employer_names = [f"employer_{k:04d}" for k in range(N_EMPLOYERS)]
    no_employer = (employment == EMPLOYMENT.index("unemployed")) | (employment == EMPLOYMENT.index("retired"))

    years_possible = np.maximum(age - 16.0, 0.0)
    employment_years = np.minimum(rng.gamma(1.6, 4.0, size=n), years_possible)
    employment_years = np.where(employment == EMPLOYMENT.index("unemployed"), 0.0, np.round(employment_years, 1))

    # --- money: log-normal incomes with a heavy upper tail -----------------------------------
    log_income = (10.25 + 0.022 * (age - 18.0) - 0.00045 * (age - 45.0) ** 2
                  + _EMPLOYMENT_INCOME[employment] - 0.13 * (1 - gender) + region_income[region]
                  - 0.10 * latent + rng.normal(0.0, 0.42, size=n))
    income = np.exp(log_income)
    rich = rng.random(n) < 0.008
    income = np.where(rich, income * np.exp(rng.normal(1.6, 0.5, size=n)), income)
    if drifted:
        income *= 0.85
    income = np.round(income, -1)

    loan = np.exp(0.55 * log_income + 3.6 + _PURPOSE_LOAN[purpose] + rng.normal(0.0, 0.5, size=n))
    loan = np.clip(np.round(loan, -2), 500.0, 250_000.0)
    term_idx = np.clip(np.floor(np.log(loan / 1500.0) * 1.1 + rng.normal(0.0, 0.8, size=n)), 0, len(LOAN_TERMS) - 1)
    loan_term = LOAN_TERMS[term_idx.astype(np.int64)].astype(np.float64)

    dti = np.exp(rng.normal(-1.2 + 0.35 * latent, 0.9, size=n))
    debt = np.where(rng.random(n) < 0.22, 0.0, income * dti)
    spikes = rng.random(n) < 0.005
    debt = np.where(spikes, debt + income * (rng.pareto(1.5, size=n) + 1.0) * 2.0, debt)
    debt = np.round(debt, -1)

    history = np.minimum(rng.gamma(2.0, 40.0, size=n) + 0.6 * (age - 18.0) * 12.0 * rng.random(n),
                         (age - 18.0) * 12.0 + 6.0)
    history = np.floor(np.maximum(history, 0.0))
    open_accounts = rng.poisson(1.0 + history / 70.0 + 0.4 * np.maximum(latent, 0.0)).astype(np.float64)
    delinquencies = rng.poisson(0.22 * np.exp(1.1 * latent)).astype(np.float64)
    inquiries = rng.poisson(0.8 * np.exp(0.6 * latent)).astype(np.float64)
    util_mean = 1.0 / (1.0 + np.exp(-(-0.55 + 1.0 * latent + (0.45 if drifted else 0.0))))
    utilisation = rng.beta(util_mean * 5.0, (1.0 - util_mean) * 5.0)
    over = rng.random(n) < 0.02
    utilisation = np.where(over, 1.0 + 0.3 * rng.random(n), utilisation)
    utilisation = np.round(utilisation, 3)

    # --- target ------------------------------------------------------------------------------
    logit = (_INTERCEPT
             + 0.45 * latent
             - 0.028 * (age - 40.0) + 0.0009 * (age - 40.0) ** 2
             + 0.32 * np.log1p(debt / income)
             + 0.45 * np.log(loan / income * 4.0)
             + 2.2 * (utilisation - 0.4) + 2.0 * np.maximum(utilisation - 0.85, 0.0)
             + 0.55 * np.minimum(delinquencies, 4.0)
             + 0.12 * np.minimum(inquiries, 6.0)
             - 0.05 * np.minimum(employment_years, 15.0)
             - 0.004 * np.minimum(history, 240.0)
             + _EMPLOYMENT_EFFECT[employment] + _HOME_EFFECT[home] + _PURPOSE_EFFECT[purpose]
             + postcode_effect[postcode_idx] + np.where(no_employer, 0.0, employer_effect[employer])
             + (_DRIFT_INTERCEPT if drifted else 0.0))
    default = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    flip = rng.random(n) < _LABEL_NOISE
    default = (default ^ flip).astype(np.int8)

    # --- missing values: MCAR and MAR (given employment type, age) ---------------------------
    self_emp = employment == EMPLOYMENT.index("self_employed")
    income_missing = np.where(self_emp, 0.12, 0.02) + (0.10 if drifted else 0.0)
    income = _missing(rng, income, income_missing)
    debt = _missing(rng, debt, np.where(age < 25, 0.06, 0.015))
    employment_years = _missing(rng, employment_years, 0.03)
    inquiries = _missing(rng, inquiries, 0.02)
    home_codes = np.where(rng.random(n) < 0.01, -1, home)
    employer_codes = np.where(no_employer, -1, employer)

    frame = pd.DataFrame({
        "application_id": ids,
        "application_date": dates,
        "age": age,
        "gender": _categorical(gender, GENDERS),
        "title": _categorical(title, TITLES),
        "region": _categorical(region, REGIONS),
        "postcode": pd.Categorical.from_codes(postcode_idx, categories=pd.Index(postcode_names, dtype="str")),
        "home_ownership": _categorical(home_codes, HOME),
        "employment_type": _categorical(employment, EMPLOYMENT),
        "employer": pd.Categorical.from_codes(employer_codes.astype(np.int32),
                                              categories=pd.Index(employer_names, dtype="str")),
        "employment_years": employment_years,
        "income": income,
        "loan_amount": loan,
        "loan_term_months": loan_term,
        "purpose": _categorical(purpose, PURPOSES),
        "debt": debt,
        "credit_history_months": history,
        "n_open_accounts": open_accounts,
        "n_delinquencies": delinquencies,
        "n_inquiries_6m": inquiries,
        "utilisation": utilisation,
        "default": default,
    }, columns=COLUMNS)
    for col in ("postcode", "employer"):  # levels = the values present
        frame[col] = frame[col].cat.remove_unused_categories()
    return frame
