-- gold.customer_orders: one row per (partner_id, customer_id) known from the customers feed
-- or from any order (whatever its status).
--   full_name : first and last name joined by one space, nulls left out; null when both are
WITH known AS (
    SELECT partner_id, customer_id FROM customers
    UNION
    SELECT partner_id, customer_id FROM orders
), agg AS (
    SELECT partner_id, customer_id,
           COUNT(*) AS orders, MIN(order_date) AS first_order_date, MAX(order_date) AS last_order_date,
           SUM(net) AS net
    FROM _fulfilled_orders
    GROUP BY partner_id, customer_id
)
SELECT
    k.partner_id,
    k.customer_id,
    CASE
        WHEN c.first_name IS NULL AND c.last_name IS NULL THEN NULL
        WHEN c.first_name IS NULL THEN c.last_name
        WHEN c.last_name IS NULL THEN c.first_name
        ELSE c.first_name || ' ' || c.last_name
    END                                 AS full_name,
    c.email,
    c.country,
    COALESCE(a.orders, 0)               AS orders,
    a.first_order_date,
    a.last_order_date,
    money(COALESCE(a.net, 0))           AS lifetime_net_revenue
FROM known k
LEFT JOIN customers c ON c.partner_id = k.partner_id AND c.customer_id = k.customer_id
LEFT JOIN agg a ON a.partner_id = k.partner_id AND a.customer_id = k.customer_id
