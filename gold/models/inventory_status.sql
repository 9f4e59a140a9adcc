-- gold.inventory_status: one row per (snapshot_date, partner_id, sku, warehouse).
SELECT
    i.snapshot_date,
    i.partner_id,
    i.sku,
    i.warehouse,
    p.name                                  AS product_name,
    p.category,
    i.quantity_on_hand,
    i.reorder_level,
    i.quantity_on_hand <= i.reorder_level   AS needs_reorder
FROM inventory i
LEFT JOIN products p ON p.partner_id = i.partner_id AND p.sku = i.sku
