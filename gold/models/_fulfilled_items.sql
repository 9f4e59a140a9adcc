-- Shared view (not published): every item of a fulfilled order, with its line amount,
-- whether it counts as returned, and its product's current category.
--   fulfilled order : status completed or returned (pending and cancelled are in no figure)
--   line_amount     : quantity x unit_price x (1 - discount), exact decimal
--   returned item   : its returned flag is true, or its order is returned
--   category        : the product's current category (partner, sku); 'Unknown' if none
-- Items whose order is unknown are in no gold figure (inner join with orders).
SELECT
    o.partner_id,
    o.order_id,
    o.customer_id,
    CAST(o.order_date AS DATE)                                              AS order_date,
    o.currency,
    o.campaign_id,
    i.sku,
    i.quantity,
    CAST(i.quantity AS DECIMAL(38, 4)) * i.unit_price * (1 - i.discount)    AS line_amount,
    (i.returned OR o.status = 'returned')                                   AS is_returned,
    COALESCE(p.category, 'Unknown')                                         AS category
FROM orders o
JOIN order_items i ON i.partner_id = o.partner_id AND i.order_id = o.order_id
LEFT JOIN products p ON p.partner_id = i.partner_id AND p.sku = i.sku
WHERE o.status IN ('completed', 'returned')
