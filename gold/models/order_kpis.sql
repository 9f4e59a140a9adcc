-- gold.order_kpis: one row per (order_date, currency). Fulfilled orders without items count.
SELECT
    order_date,
    currency,
    COUNT(*)                                                                AS total_orders,
    money(SUM(net))                                                         AS total_revenue,
    SUM(items_sold)                                                         AS total_items_sold,
    CAST(SUM(has_returned_item) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE)       AS return_rate,
    COUNT(DISTINCT partner_id || '/' || customer_id)                        AS unique_customers
FROM _fulfilled_orders
GROUP BY order_date, currency
