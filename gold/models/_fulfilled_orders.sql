-- Shared view (not published): every fulfilled order (status completed or returned), with
-- or without items, with its exact gross, returned and net amounts and returned quantity.
SELECT
    o.partner_id,
    o.order_id,
    o.customer_id,
    CAST(o.order_date AS DATE)                                                      AS order_date,
    o.currency,
    o.campaign_id,
    COALESCE(SUM(f.quantity), 0)                                                    AS items_sold,
    COALESCE(SUM(f.line_amount), 0)                                                 AS gross,
    COALESCE(SUM(CASE WHEN f.is_returned THEN f.line_amount ELSE 0 END), 0)        AS returned,
    COALESCE(SUM(f.line_amount), 0)
      - COALESCE(SUM(CASE WHEN f.is_returned THEN f.line_amount ELSE 0 END), 0)    AS net,
    COALESCE(MAX(CASE WHEN f.is_returned THEN 1 ELSE 0 END), 0)                    AS has_returned_item
FROM orders o
LEFT JOIN _fulfilled_items f ON f.partner_id = o.partner_id AND f.order_id = o.order_id
WHERE o.status IN ('completed', 'returned')
GROUP BY o.partner_id, o.order_id, o.customer_id, CAST(o.order_date AS DATE), o.currency, o.campaign_id
