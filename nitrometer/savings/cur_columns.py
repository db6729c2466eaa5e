"""The Cost and Usage Report columns the savings model reads, in each spelling: CUR 2.0 /
Athena snake_case and legacy CSV headers; and the line item types it counts."""

from __future__ import annotations

# canonical name -> accepted spellings (CUR 2.0 / Athena snake_case, legacy CSV headers)
COLUMNS = {
    "usage_type": ("line_item_usage_type", "lineItem/UsageType"),
    "usage_amount": ("line_item_usage_amount", "lineItem/UsageAmount"),
    "line_type": ("line_item_line_item_type", "lineItem/LineItemType"),
    "unblended_cost": ("line_item_unblended_cost", "lineItem/UnblendedCost"),
    "operation": ("line_item_operation", "lineItem/Operation"),
    "product_code": ("line_item_product_code", "lineItem/ProductCode"),
    "start": ("line_item_usage_start_date", "lineItem/UsageStartDate"),
    "normalization_factor": ("line_item_normalization_factor", "lineItem/NormalizationFactor"),
    "normalized_usage": ("line_item_normalized_usage_amount",
                         "lineItem/NormalizedUsageAmount"),
    "ri_cost": ("reservation_effective_cost", "reservation/EffectiveCost"),
    "sp_cost": ("savings_plan_savings_plan_effective_cost",
                "savingsPlan/SavingsPlanEffectiveCost"),
    "sp_type": ("savings_plan_offering_type", "savingsPlan/OfferingType"),
    # what was bought: the dashboard prices covered usage at the Graviton rate of the same
    # term, payment option and offering class
    "ri_lease": ("pricing_lease_contract_length", "pricing/LeaseContractLength"),
    "ri_payment": ("pricing_purchase_option", "pricing/PurchaseOption"),
    "ri_class": ("pricing_offering_class", "pricing/OfferingClass"),
    "sp_term": ("savings_plan_purchase_term", "savingsPlan/PurchaseTerm"),
    "sp_payment": ("savings_plan_payment_option", "savingsPlan/PaymentOption"),
    # amortized fees: optional, legacy and older reports lack them
    "ri_unused_upfront": ("reservation_unused_amortized_upfront_fee_for_billing_period",
                          "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"),
    "ri_unused_recurring": ("reservation_unused_recurring_fee",
                            "reservation/UnusedRecurringFee"),
    "sp_commitment": ("savings_plan_total_commitment_to_date",
                      "savingsPlan/TotalCommitmentToDate"),
    "sp_used_commitment": ("savings_plan_used_commitment", "savingsPlan/UsedCommitment"),
    "instance_type": ("product_instance_type", "product/instanceType"),
    "region": ("product_region", "product_region_code", "product/region",
               "product/regionCode"),
    "os": ("product_operating_system", "product/operatingSystem"),
}
REQUIRED = ("usage_type", "usage_amount", "line_type", "unblended_cost")
NUMERIC = {"usage_amount", "unblended_cost", "normalization_factor", "normalized_usage",
           "ri_cost", "sp_cost", "ri_unused_upfront", "ri_unused_recurring", "sp_commitment",
           "sp_used_commitment"}
# CUR 2.0 keeps these in the `product` map (Parquet) or a JSON object (CSV).
PRODUCT_KEYS = {"instance_type": ("instance_type",), "region": ("region", "region_code"),
                "os": ("operating_system",)}
USAGE_LINE_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage")
# Fee lines whose unused part is amortized cost, and the columns that hold it. The other fee
# types (SavingsPlanNegation, SavingsPlanUpfrontFee, Fee of a reservation) amortize to 0.
RI_FEE, SP_FEE = "RIFee", "SavingsPlanRecurringFee"
RI_FEE_COLUMNS = ("ri_unused_upfront", "ri_unused_recurring")
SP_FEE_COLUMNS = ("sp_commitment", "sp_used_commitment")
WINDOWS_OPERATIONS = ("RunInstances:0002", "RunInstances:0006", "RunInstances:0102",
                      "RunInstances:0202", "RunInstances:0800")
