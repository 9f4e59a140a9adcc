-- gold.daily_sales: one row per (order_date, partner_id, category, currency).
SELECT
    order_date,
    partner_id,
    category,
    currency,
    COUNT(DISTINCT order_id)                                                AS orders,
    SUM(quantity)                                                           AS items_sold,
    money(SUM(line_amount))                                                 AS gross_revenue,
    money(SUM(CASE WHEN is_returned THEN line_amount ELSE 0 END))           AS returned_revenue,
    money(SUM(line_amount) - SUM(CASE WHEN is_returned THEN line_amount ELSE 0 END)) AS net_revenue
FROM _fulfilled_items
GROUP BY order_date, partner_id, category, currency
