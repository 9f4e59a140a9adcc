-- gold.category_kpis: one row per (order_date, category, currency), all partners together.
--   avg_order_value : gross / distinct (partner_id, order_id) in the group, rounded from the exact quotient
--   avg_return_rate : returned quantity / items sold
SELECT
    order_date,
    category,
    currency,
    money(SUM(line_amount) - SUM(CASE WHEN is_returned THEN line_amount ELSE 0 END))      AS daily_revenue,
    money_div(SUM(line_amount), COUNT(DISTINCT partner_id || '/' || order_id))             AS avg_order_value,
    CAST(SUM(CASE WHEN is_returned THEN quantity ELSE 0 END) AS DOUBLE) / CAST(SUM(quantity) AS DOUBLE) AS avg_return_rate
FROM _fulfilled_items
GROUP BY order_date, category, currency
