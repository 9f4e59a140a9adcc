-- gold.dim_products: one row per (partner_id, sku), the current product.
SELECT
    partner_id,
    sku,
    name,
    category,
    brand,
    money(price)        AS price,
    currency,
    quantity,
    first_seen_date,
    last_changed_date
FROM products
