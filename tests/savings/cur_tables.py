"""The CUR tables Athena holds, as AWS documents their columns.

CUR 2.0 (AWS Data Exports): the table dictionary, docs.aws.amazon.com/cur/latest/userguide/
table-dictionary-cur2.html, with its column pages table-dictionary-cur2-line-item.html,
-pricing.html, -product.html, -reservation.html and -savings-plan.html. Every EC2 product
attribute outside the static columns is a key of the `product` column, map<string,string>.
Legacy CUR in Athena: the CUR User Guide's data dictionary (lineItem/, pricing/, product/,
reservation/, savingsPlan/ columns) with the Athena spelling AWS's integration writes:
lower snake_case, "/" as "_" (docs.aws.amazon.com/cur/latest/userguide/cur-query-athena.html).
Only the columns the savings query could read are listed, with the types AWS gives them.
"""

from __future__ import annotations

CUR2_COLUMNS = {
    "line_item_line_item_type": "string",
    "line_item_usage_type": "string",
    "line_item_operation": "string",
    "line_item_product_code": "string",
    "line_item_usage_start_date": "timestamp",
    "line_item_usage_amount": "double",
    "line_item_normalization_factor": "double",
    "line_item_normalized_usage_amount": "double",
    "line_item_unblended_cost": "double",
    "pricing_lease_contract_length": "string",
    "pricing_offering_class": "string",
    "pricing_purchase_option": "string",
    "product": "map<string,string>",
    "product_instance_type": "string",
    "product_region_code": "string",
    "reservation_effective_cost": "double",
    "reservation_unused_amortized_upfront_fee_for_billing_period": "double",
    "reservation_unused_recurring_fee": "double",
    "savings_plan_offering_type": "string",
    "savings_plan_payment_option": "string",
    "savings_plan_purchase_term": "string",
    "savings_plan_savings_plan_effective_cost": "double",
    "savings_plan_total_commitment_to_date": "double",
    "savings_plan_used_commitment": "double",
}
# Keys of CUR 2.0's product map (legacy product/ columns not in the static schema).
CUR2_PRODUCT_KEYS = {"region", "operating_system", "instance_type", "region_code"}

LEGACY_ATHENA_COLUMNS = {
    **{name: kind for name, kind in CUR2_COLUMNS.items()
       if name not in ("product", "product_region_code")},
    "product_region": "string",
    "product_operating_system": "string",
}
