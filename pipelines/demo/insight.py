"""The demo's customer-insight stage: the KPI report's headline and the customer-value model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tenure.pipelines.demo.config import Say
    from tenure.settings import Settings


def insight_tour(settings: Settings, say: Say) -> dict[str, Any]:
    """Compute the KPI report (as ``tenure report kpis``) and fit the value model (``tenure train value``),
    so the service started next serves ``expected_value`` and the dashboard shows value at risk.

    Returns
    -------
    dict: ``kpis`` (the headline totals and the top negative topics), ``value`` (the fit's summary).
    """
    from tenure.insight.kpis import build_kpi_report
    from tenure.insight.value import fit_customer_values

    report = build_kpi_report(settings)
    t = report["totals"]
    topics = [x["topic"] for x in report.get("voice", {}).get("negative_topics", [])[:4]]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    say("result", f"KPIs: monthly churn {pct(t['churn_rate'])}, repurchase {pct(t['repurchase_rate'])}, conversion "
                  f"{pct(t['conversion_rate'])}, NPS {t['nps']:.0f}, CSAT {pct(t['csat'])}, CES {t['ces'] or 0:.1f}/7"
        + (f"; customers complain about: {', '.join(topics)}" if topics else ""))
    try:
        fit = fit_customer_values(settings)
    except ValueError as exc:  # the demo goes on without values (the dashboard says there are none)
        say("warn", f"no customer values: {exc}")
        return {"kpis": {"totals": t, "negative_topics": topics}, "value": {"customers": 0, "error": str(exc)}}
    m = fit.metrics
    say("result", f"customer value ({fit.purchase_model} + Gamma-Gamma) for {fit.customers:,} customers"
        + (f"; held-out orders MAE {m['mae_model']:.2f} vs naive {m['mae_naive']:.2f}" if m else ""))
    return {"kpis": {"totals": t, "negative_topics": topics}, "value": fit.as_dict()}
