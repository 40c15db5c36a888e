"""Customer value: a buy-till-you-die model of each customer's future purchases and spend.

BG/NBD (Fader, Hardie & Lee 2005) models repeat purchases and the chance that a customer is
still "alive"; Gamma-Gamma models the value of an order. Both are fitted by maximum likelihood
with ``lifetimes`` (chosen by measurement over pymc-marketing; see docs/insight.md). Inputs are
the usual per-customer summary, computed from purchase events:

- an *order* is a customer's purchases on one UTC day (as in the KPI report);
- ``frequency``: repeat orders (orders after the first), ``recency``: time from the first to
  the last order, ``T``: time from the first order to the end of the calibration period, in
  ``time_unit_days`` units (weeks by default); ``monetary_value``: mean value of the repeat
  orders (0 without one), as the Gamma-Gamma model expects.

``tenure train value`` fits the model on the stored events, logs it to MLflow and writes
``features_dir/customer_values.parquet`` (one row per customer: ``expected_purchases``,
``expected_value`` over ``insight.value_horizon_days``, ``p_alive``); the service reads that file
once (``expected_value`` in ``/churn-score``), the dashboard and ``tenure export audience --rank
value_at_risk`` read it through :func:`load_customer_values`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from tenure.settings import Settings

logger = logging.getLogger(__name__)

VALUES_FILE = "customer_values.parquet"
VALUE_COLUMNS: tuple[str, ...] = ("customer_id", "expected_purchases", "expected_value", "p_alive")
_DAY_NS = 86_400 * 10**9


def rfm_summary(purchases: pd.DataFrame, calibration_end: pd.Timestamp, time_unit_days: float = 7.0) -> pd.DataFrame:
    """Per-customer frequency, recency, T and monetary value of purchases up to ``calibration_end``.

    Parameters
    ----------
    purchases: one row per purchase: ``customer_id``, ``event_at`` (UTC), ``amount`` (NaN counts 0).
    calibration_end: end of the calibration period (inclusive, tz-aware UTC).
    time_unit_days: the unit of ``recency`` and ``T`` in days (7 = weeks, the literature's unit).

    Returns
    -------
    DataFrame indexed by ``customer_id`` (customers with an order up to the end only), columns
    ``frequency`` (int), ``recency``, ``T``, ``monetary_value`` (float), ``orders`` (int).
    """
    if time_unit_days <= 0:
        raise ValueError(f"time_unit_days must be positive, got {time_unit_days}")
    for column in ("customer_id", "event_at", "amount"):
        if column not in purchases.columns:
            raise ValueError(f"purchases lack the column {column!r}")
    times = purchases["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    keep = times <= calibration_end.value
    day = pd.Series(times[keep] // _DAY_NS, name="day")
    orders = (pd.DataFrame({"customer_id": purchases["customer_id"].to_numpy(dtype=object)[keep], "day": day,
                            "amount": np.nan_to_num(purchases["amount"].to_numpy(dtype=np.float64)[keep])})
              .groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index())
    if orders.empty:
        return pd.DataFrame(columns=["frequency", "recency", "T", "monetary_value", "orders"],
                            index=pd.Index([], name="customer_id"))
    end_day = calibration_end.value / _DAY_NS
    grouped = orders.groupby("customer_id", sort=True)
    first, last = grouped["day"].min(), grouped["day"].max()
    n = grouped.size()
    first_amount = grouped["amount"].first()
    repeat_total = grouped["amount"].sum() - first_amount
    summary = pd.DataFrame({
        "frequency": (n - 1).astype(np.int64),
        "recency": (last - first) / time_unit_days,
        "T": (end_day - first) / time_unit_days,
        "monetary_value": np.where(n > 1, repeat_total / (n - 1).clip(lower=1), 0.0),
        "orders": n.astype(np.int64),
    })
    summary.index.name = "customer_id"
    return summary


@dataclass
class ValueModel:
    """A fitted BG/NBD + Gamma-Gamma pair (``lifetimes`` fitters) and what it was fitted with.

    Attributes
    ----------
    purchases_model: ``lifetimes.BetaGeoFitter``, fitted.
    spend_model: ``lifetimes.GammaGammaFitter`` fitted on customers with repeat orders, or None
        when too few have one (expected value then uses the mean order value).
    time_unit_days: the unit of recency and T.
    mean_order_value: the mean repeat-order value of the calibration data (fallback spend).
    penalizer: the L2 penalty the fit converged with.
    purchase_model: ``bgnbd``, or ``mbgnbd`` (the modified BG/NBD of Batislam et al. 2007) when BG/NBD's
        expectation is not finite on these data (a + b < 1 for customers without a repeat order).
    """

    purchases_model: Any
    spend_model: Any | None
    time_unit_days: float
    mean_order_value: float
    penalizer: float = 0.0
    purchase_model: str = "bgnbd"

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters: BG/NBD ``r``, ``alpha``, ``a``, ``b``; Gamma-Gamma ``p``, ``q``, ``v``."""
        out = {k: float(v) for k, v in self.purchases_model.params_.items()}
        if self.spend_model is not None:
            out.update({k: float(v) for k, v in self.spend_model.params_.items()})
        return out

    def expected_purchases(self, summary: pd.DataFrame, horizon_days: float) -> np.ndarray:
        """Expected orders of each customer in the next ``horizon_days``: array of shape (n_customers,)."""
        t = horizon_days / self.time_unit_days
        with _quiet_numerics():
            return np.asarray(self.purchases_model.conditional_expected_number_of_purchases_up_to_time(
                t, summary["frequency"], summary["recency"], summary["T"]), dtype=np.float64)

    def p_alive(self, summary: pd.DataFrame) -> np.ndarray:
        """Probability that each customer is still a customer (BG/NBD), shape (n_customers,)."""
        with _quiet_numerics():
            return np.asarray(self.purchases_model.conditional_probability_alive(
                summary["frequency"], summary["recency"], summary["T"]), dtype=np.float64)

    def expected_order_value(self, summary: pd.DataFrame) -> np.ndarray:
        """Expected value of each customer's future orders (Gamma-Gamma), shape (n_customers,)."""
        if self.spend_model is None:
            return np.full(len(summary), self.mean_order_value)
        frequency = summary["frequency"].to_numpy()
        monetary = summary["monetary_value"].to_numpy(dtype=np.float64)
        ok = (frequency > 0) & (monetary > 0)
        p, q, v = (float(self.spend_model.params_[k]) for k in ("p", "q", "v"))
        population = p * v / (q - 1) if q > 1 else self.mean_order_value  # mean order value of a new customer
        out = np.full(len(summary), population)
        if ok.any():
            out[ok] = np.asarray(self.spend_model.conditional_expected_average_profit(
                pd.Series(frequency[ok]), pd.Series(monetary[ok])), dtype=np.float64)
        return out

    def customer_values(self, summary: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """``customer_id``, ``expected_purchases``, ``expected_value`` (orders x order value over the horizon,
        undiscounted), ``p_alive``: one row per customer of ``summary``."""
        purchases = self.expected_purchases(summary, horizon_days)
        return pd.DataFrame({
            "customer_id": summary.index.astype(str),
            "expected_purchases": purchases,
            "expected_value": purchases * self.expected_order_value(summary),
            "p_alive": self.p_alive(summary),
        })


def fit_value_model(summary: pd.DataFrame, time_unit_days: float = 7.0, penalizer: float = 0.0,
                    min_repeat_customers: int = 20) -> ValueModel:
    """Fit BG/NBD on ``summary`` (:func:`rfm_summary`) and Gamma-Gamma on its repeat customers.

    When the fit does not converge with ``penalizer``, larger penalties are tried in turn
    (:data:`_PENALIZERS`, logged); the one used is ``ValueModel.penalizer``. When BG/NBD's
    expectation is not finite on these data, the modified BG/NBD is fitted instead
    (``ValueModel.purchase_model``).

    Raises
    ------
    ValueError: fewer than 2 customers, nobody bought twice (the model cannot tell rates apart), or
        no penalty made the fit converge.
    """
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    if len(summary) < 2 or not (summary["frequency"] > 0).any():
        raise ValueError(f"the value model needs customers with repeat orders; the calibration data has "
                         f"{len(summary)} customers and {int((summary['frequency'] > 0).sum()) if len(summary) else 0} "
                         "with a repeat order")
    from lifetimes import ModifiedBetaGeoFitter
    from lifetimes.fitters import ConvergenceError

    tried = []
    purchases = None
    for kind, fitter in (("bgnbd", BetaGeoFitter), ("mbgnbd", ModifiedBetaGeoFitter)):
        for coef in dict.fromkeys((penalizer, *(p for p in _PENALIZERS if p > penalizer))):
            tried.append(f"{kind} {coef:g}")
            try:
                with contextlib.redirect_stdout(io.StringIO()) as said, _quiet_numerics():  # lifetimes prints
                    model = fitter(penalizer_coef=coef).fit(summary["frequency"], summary["recency"], summary["T"])
            except ConvergenceError:
                logger.debug("lifetimes: %s", said.getvalue())
                logger.info("%s did not converge with penalizer %g; trying a larger one", kind, coef)
                continue
            with _quiet_numerics():  # overflow on the way to a non-finite answer is checked just below
                checks = [model.conditional_expected_number_of_purchases_up_to_time(
                    t, summary["frequency"], summary["recency"], summary["T"]) for t in (1.0, 13.0, 52.0)]
            if all(np.isfinite(np.asarray(c, dtype=np.float64)).all() for c in checks):
                purchases = model
                break
            # BG/NBD's expectation for non-repeaters needs 2F1(.; a+b-1; .), which fails for a + b < 1:
            # the modified BG/NBD (dropout possible at the first purchase too) has no such term
            logger.info("%s gives non-finite predictions (a + b = %.3g): trying the modified BG/NBD", kind,
                           float(model.params_["a"] + model.params_["b"]))
            break
        if purchases is not None:
            break
    if purchases is None:
        raise ValueError(f"the purchase model did not fit ({', '.join(tried)}): the purchases may not look like "
                         "repeat buying (too few customers or orders); set insight.value_penalizer higher")
    penalizer, purchase_model_kind = coef, kind
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    mean_value = float(repeat["monetary_value"].mean()) if len(repeat) else 0.0
    spend = None
    if len(repeat) >= min_repeat_customers:
        try:
            with contextlib.redirect_stdout(io.StringIO()), _quiet_numerics():
                spend = GammaGammaFitter(penalizer_coef=penalizer).fit(repeat["frequency"], repeat["monetary_value"])
        except ConvergenceError:
            logger.warning("Gamma-Gamma did not converge: order value is the mean (%.2f)", mean_value)
    else:
        logger.warning("only %d customers with repeat orders: order value is the mean (%.2f), not Gamma-Gamma",
                       len(repeat), mean_value)
    return ValueModel(purchases_model=purchases, spend_model=spend, time_unit_days=time_unit_days,
                      mean_order_value=mean_value, penalizer=penalizer, purchase_model=purchase_model_kind)


@contextlib.contextmanager
def _quiet_numerics():
    """numpy and scipy overflow warnings off (a fit explores extreme parameters; results are checked)."""
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


_PENALIZERS = (0.001, 0.01, 0.1, 1.0)
"""Penalties tried in turn when the BG/NBD fit does not converge."""


# ------------------------------------------------------------------------------ on the tables


@dataclass
class ValueFit:
    """What ``tenure train value`` did: the values file, the MLflow run and the model's figures."""

    path: Path
    run_id: str | None
    customers: int
    params: dict[str, float]
    metrics: dict[str, float]
    calibration_end: str
    purchase_model: str = "bgnbd"

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "run_id": self.run_id, "customers": self.customers, "params": self.params,
                "metrics": self.metrics, "calibration_end": self.calibration_end,
                "purchase_model": self.purchase_model}


def values_path(settings: Settings) -> Path:
    """Where the customer values live: ``features_dir/customer_values.parquet``."""
    return Path(settings.paths.features_dir) / VALUES_FILE


def fit_customer_values(settings: Settings, as_of: object | None = None, track: bool = True) -> ValueFit:
    """Fit the value model on the stored purchases up to ``as_of`` (default: the last event), write every
    customer's value and log the run to MLflow.

    Also measures the model on the data it has: the last ``insight.value_holdout_days`` are held
    out, a model fitted before them predicts each customer's orders in them, and the mean
    absolute error is logged beside the naive rule's ("as many orders as in the same length
    before"); the values written come from a refit on everything.

    Raises
    ------
    FileNotFoundError: no events stored. ValueError: no repeat purchases to learn from.
    """
    from tenure.features.tables import read_events

    cfg = settings.insight
    events = read_events(settings, columns=["customer_id", "event_type", "amount"], missing_ok=False)
    purchases = events[events["event_type"] == "purchase"]
    if purchases.empty:
        raise ValueError("no purchase events stored: the value model learns from purchases")
    end = pd.Timestamp(as_of, tz="UTC") if as_of is not None and pd.Timestamp(as_of).tzinfo is None else (
        pd.Timestamp(as_of).tz_convert("UTC") if as_of is not None else events["event_at"].max())
    metrics = evaluate_holdout(purchases, end, cfg.value_holdout_days, cfg.value_time_unit_days, cfg.value_penalizer)
    summary = rfm_summary(purchases, end, cfg.value_time_unit_days)
    model = fit_value_model(summary, cfg.value_time_unit_days, cfg.value_penalizer)
    values = model.customer_values(summary, cfg.value_horizon_days)
    values["horizon_days"] = float(cfg.value_horizon_days)
    values["calibration_end"] = end
    path = values_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    values.to_parquet(tmp, index=False)
    tmp.replace(path)  # readers see the old file or the new one, never half of one
    run_id = _track(settings, model, values, metrics, end) if track else None
    logger.debug("customer values of %d customers written to %s (run %s)", len(values), path, run_id)
    return ValueFit(path=path, run_id=run_id, customers=len(values), params=model.params, metrics=metrics,
                    calibration_end=end.isoformat(), purchase_model=model.purchase_model)


def evaluate_holdout(purchases: pd.DataFrame, end: pd.Timestamp, holdout_days: int, time_unit_days: float = 7.0,
                     penalizer: float = 0.0) -> dict[str, float]:
    """Fit up to ``end - holdout_days``, predict each calibration customer's orders in the holdout.

    Returns
    -------
    dict: ``holdout_customers``, ``mae_model`` (the fitted purchase model), ``mae_naive`` (as many orders as in the same number of
    days before the split), ``mae_recency`` (the customer's calibration rate when their last order is
    within ``holdout_days`` of the split, else 0), ``holdout_orders_actual`` / ``_predicted`` (totals).
    Empty when the data are too short.
    """
    split = end - pd.Timedelta(days=holdout_days)
    summary = rfm_summary(purchases, split, time_unit_days)
    if len(summary) < 2 or not (summary["frequency"] > 0).any():
        return {}
    actual = _orders_between(purchases, split, end).reindex(summary.index, fill_value=0).to_numpy(dtype=np.float64)
    before = _orders_between(purchases, split - pd.Timedelta(days=holdout_days), split)
    naive = before.reindex(summary.index, fill_value=0).to_numpy(dtype=np.float64)
    model = fit_value_model(summary, time_unit_days, penalizer)
    predicted = model.expected_purchases(summary, holdout_days)
    return {"holdout_customers": float(len(summary)), "mae_model": float(np.abs(predicted - actual).mean()),
            "mae_naive": float(np.abs(naive - actual).mean()),
            "mae_recency": float(np.abs(recency_rule(summary, holdout_days / time_unit_days) - actual).mean()),
            "holdout_orders_actual": float(actual.sum()), "holdout_orders_predicted": float(predicted.sum())}


def recency_rule(summary: pd.DataFrame, horizon: float, hiatus: float | None = None) -> np.ndarray:
    """The recency (hiatus) heuristic: a customer whose last order is at most ``hiatus`` before the end
    keeps their calibration rate (orders per unit of T) for ``horizon``; anyone quieter buys nothing.

    ``hiatus`` defaults to ``horizon`` (same units as ``recency`` and ``T``).
    """
    hiatus = horizon if hiatus is None else hiatus
    rate = summary["orders"].to_numpy(dtype=np.float64) / np.maximum(summary["T"].to_numpy(dtype=np.float64), 1.0)
    active = (summary["T"] - summary["recency"]).to_numpy() <= hiatus
    return np.where(active, rate * horizon, 0.0)


def _orders_between(purchases: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Orders (customer-days) per customer with ``start < event_at <= end``."""
    times = purchases["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    keep = (times > start.value) & (times <= end.value)
    frame = pd.DataFrame({"customer_id": purchases["customer_id"].to_numpy(dtype=object)[keep],
                          "day": times[keep] // _DAY_NS}).drop_duplicates()
    return frame.groupby("customer_id").size()


def _track(settings: Settings, model: ValueModel, values: pd.DataFrame, metrics: dict[str, float],
           end: pd.Timestamp) -> str:
    """Log the fit to MLflow (experiment ``insight.value_experiment``) through an explicit client."""
    import tempfile

    from tenure.registry.models import mlflow_client

    cfg = settings.insight
    client = mlflow_client(settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.value_experiment)
    if experiment is None:
        root = Path(settings.mlflow.artifact_root).resolve() / cfg.value_experiment
        root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(cfg.value_experiment, artifact_location=root.as_uri())
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, tags={"mlflow.runName": "value-bgnbd-gammagamma", "kind": "value"})
    run_id = run.info.run_id
    for key, value in {"model": f"{model.purchase_model} + Gamma-Gamma (lifetimes)", "time_unit_days": cfg.value_time_unit_days,
                       "horizon_days": cfg.value_horizon_days, "penalizer": cfg.value_penalizer,
                       "holdout_days": cfg.value_holdout_days, "calibration_end": end.isoformat()}.items():
        client.log_param(run_id, key, value)
    figures = {**{f"param_{k}": v for k, v in model.params.items()}, **metrics, "penalizer_used": model.penalizer,
               "customers": float(len(values)), "expected_value_total": float(values["expected_value"].sum()),
               "p_alive_mean": float(values["p_alive"].mean())}
    for key, value in figures.items():
        if value is not None and math.isfinite(value):
            client.log_metric(run_id, key, float(value))
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "value_model.json"
        summary.write_text(json.dumps({"params": model.params, "metrics": metrics,
                                       "mean_order_value": model.mean_order_value}, indent=2))
        client.log_artifact(run_id, str(summary))
    client.set_terminated(run_id)
    return run_id


def load_customer_values(settings: Settings) -> pd.DataFrame:
    """The latest customer values (``tenure train value``): ``customer_id``, ``expected_purchases``,
    ``expected_value``, ``p_alive`` (+ ``horizon_days``, ``calibration_end``), one row per customer.

    Raises
    ------
    FileNotFoundError: no value model was fitted yet (the message says how to fit one).
    """
    path = values_path(settings)
    if not path.is_file():
        raise FileNotFoundError(f"no customer values at {path}: fit the value model with `tenure train value`")
    frame = pd.read_parquet(path)
    missing = [c for c in VALUE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}: fit the value model again with `tenure train value`")
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def rank_by_value_at_risk(audience: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Add ``expected_value``, ``p_alive`` and ``value_at_risk`` (churn probability x expected value) to an
    audience (``customer_id``, ``churn_probability``) and order it by value at risk, highest first.

    Customers without a value (no purchase yet when the model was fitted) get ``expected_value`` 0 and
    go last. Returns a new DataFrame.
    """
    for column in ("customer_id", "churn_probability"):
        if column not in audience.columns:
            raise ValueError(f"the audience lacks the column {column!r}")
    table = values.set_index(values["customer_id"].astype(str))
    ids = audience["customer_id"].astype(str)
    out = audience.copy()
    out["expected_value"] = ids.map(table["expected_value"]).fillna(0.0).to_numpy(dtype=np.float64)
    out["p_alive"] = ids.map(table["p_alive"]).to_numpy(dtype=np.float64)
    out["value_at_risk"] = out["churn_probability"].astype(float) * out["expected_value"]
    return out.sort_values(["value_at_risk", "customer_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
