-- gold.campaign_performance: one row per campaign present in silver campaigns
-- (a campaign id known only from orders appears nowhere).
--   roas : net_revenue / budget; null when budget is null or 0
WITH agg AS (
    SELECT partner_id, campaign_id, COUNT(*) AS orders, SUM(net) AS net
    FROM _fulfilled_orders
    WHERE campaign_id IS NOT NULL
    GROUP BY partner_id, campaign_id
)
SELECT
    c.partner_id,
    c.campaign_id,
    c.name,
    c.channel,
    c.start_date,
    c.end_date,
    money(c.budget)                     AS budget,
    COALESCE(a.orders, 0)               AS orders,
    money(COALESCE(a.net, 0))           AS net_revenue,
    CASE WHEN c.budget IS NULL OR c.budget = 0 THEN NULL
         ELSE CAST(COALESCE(a.net, 0) AS DOUBLE) / CAST(c.budget AS DOUBLE)
    END                                 AS roas
FROM campaigns c
LEFT JOIN agg a ON a.partner_id = c.partner_id AND a.campaign_id = c.campaign_id
