"""Names of the hidden customer parameters and of the observed features populations sample."""

from __future__ import annotations

__all__ = ["HIDDEN_PARAMETERS", "SAMPLED_FEATURES"]

HIDDEN_PARAMETERS: dict[str, str] = {
    "purchase_rate": "organic purchases per year at engagement 0.5 and no discount habit",
    "order_value": "mean order value, USD",
    "visit_rate": "organic site visits per year",
    "email_responsiveness": "P(open and click) of a delivered e-mail at zero fatigue",
    "sms_responsiveness": "P(click) of a delivered SMS at zero fatigue",
    "push_responsiveness": "P(open) of a delivered push notification at zero fatigue",
    "click_conversion": "P(purchase in the cycle) after engaging with a plain message",
    "discount_elasticity": "relative lift of click conversion from a 15% discount (linear in rate)",
    "shipping_elasticity": "relative lift of click conversion from free shipping",
    "recommendation_affinity": "relative lift of click conversion from a recommendation at "
    "engagement 1",
    "fatigue_sensitivity": "open probability is multiplied by exp(-this x contacts_last_30d)",
    "unsubscribe_rate": "P(unsubscribe) per delivered message at zero fatigue",
    "churn_rate": "baseline hazard of lapsing for good, per year",
    "contact_churn_sensitivity": "relative churn-hazard increase per message above the tolerance",
    "discount_habituation": "full-price purchase rate is multiplied by exp(-this x "
    "discounts_last_90d)",
    "irritation": "share of engagement lost per delivered message that is ignored",
}
"""Hidden parameters of a customer, in column order, with their meaning."""

SAMPLED_FEATURES: tuple[str, ...] = (
    "last_purchase_days",
    "engagement_score",
    "discount_sensitive",
    "free_shipping_preferred",
    "days_since_contact",
    "consent_email",
    "consent_sms",
    "consent_push",
)
"""Observed features each segment gives a distribution for; the rest are derived."""
