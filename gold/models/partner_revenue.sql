-- gold.partner_revenue: one row per (order_date, partner_id, currency).
--   revenue_share : partner net / all partners' net that day and currency (0 when that is 0)
WITH p AS (
    SELECT order_date, partner_id, currency, COUNT(*) AS orders, SUM(net) AS net
    FROM _fulfilled_orders
    GROUP BY order_date, partner_id, currency
)
SELECT
    order_date,
    partner_id,
    currency,
    orders,
    money(net)                                                              AS net_revenue,
    CASE WHEN SUM(net) OVER (PARTITION BY order_date, currency) = 0 THEN 0.0
         ELSE CAST(net AS DOUBLE) / CAST(SUM(net) OVER (PARTITION BY order_date, currency) AS DOUBLE)
    END                                                                     AS revenue_share
FROM p
