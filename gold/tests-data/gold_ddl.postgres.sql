CREATE SCHEMA IF NOT EXISTS gold;

COMMENT ON SCHEMA gold IS 'medallion gold: business tables computed from silver (CONTRACT.md section 3). Published atomically per business date.';

CREATE TABLE gold.daily_sales (
    order_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    category TEXT NOT NULL,
    currency TEXT NOT NULL,
    orders BIGINT NOT NULL,
    items_sold BIGINT NOT NULL,
    gross_revenue NUMERIC(18,2) NOT NULL,
    returned_revenue NUMERIC(18,2) NOT NULL,
    net_revenue NUMERIC(18,2) NOT NULL,
    PRIMARY KEY (order_date, partner_id, category, currency)
);

CREATE INDEX daily_sales_partner_id_order_date_idx ON gold.daily_sales (partner_id, order_date);

COMMENT ON TABLE gold.daily_sales IS 'Sales of fulfilled orders (completed or returned) per order date, partner, category and currency. Grain: order_date, partner_id, category, currency.';

COMMENT ON COLUMN gold.daily_sales.order_date IS 'UTC calendar date of the order''s timestamp.';

COMMENT ON COLUMN gold.daily_sales.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.daily_sales.category IS 'The product''s current category (partner, sku); ''Unknown'' if the product is unknown.';

COMMENT ON COLUMN gold.daily_sales.currency IS 'The order''s ISO 4217 currency.';

COMMENT ON COLUMN gold.daily_sales.orders IS 'Distinct fulfilled orders (partner_id, order_id) with an item in the group.';

COMMENT ON COLUMN gold.daily_sales.items_sold IS 'Sum of item quantities.';

COMMENT ON COLUMN gold.daily_sales.gross_revenue IS 'Sum of line_amount = quantity x unit_price x (1 - discount).';

COMMENT ON COLUMN gold.daily_sales.returned_revenue IS 'Sum of line_amount of returned items (item flagged returned, or its order returned).';

COMMENT ON COLUMN gold.daily_sales.net_revenue IS 'gross_revenue - returned_revenue, from exact sums.';

CREATE TABLE gold.category_kpis (
    order_date DATE NOT NULL,
    category TEXT NOT NULL,
    currency TEXT NOT NULL,
    daily_revenue NUMERIC(18,2) NOT NULL,
    avg_order_value NUMERIC(18,2) NOT NULL,
    avg_return_rate DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (order_date, category, currency)
);

COMMENT ON TABLE gold.category_kpis IS 'Category KPIs of fulfilled orders per order date, category and currency. Grain: order_date, category, currency.';

COMMENT ON COLUMN gold.category_kpis.order_date IS 'UTC calendar date of the order''s timestamp.';

COMMENT ON COLUMN gold.category_kpis.category IS 'The product''s current category (partner, sku); ''Unknown'' if the product is unknown.';

COMMENT ON COLUMN gold.category_kpis.currency IS 'The order''s ISO 4217 currency.';

COMMENT ON COLUMN gold.category_kpis.daily_revenue IS 'Sum of net revenue (gross - returned).';

COMMENT ON COLUMN gold.category_kpis.avg_order_value IS 'Gross revenue / distinct orders in the group, rounded from the exact quotient.';

COMMENT ON COLUMN gold.category_kpis.avg_return_rate IS 'Returned quantity / items sold.';

CREATE TABLE gold.order_kpis (
    order_date DATE NOT NULL,
    currency TEXT NOT NULL,
    total_orders BIGINT NOT NULL,
    total_revenue NUMERIC(18,2) NOT NULL,
    total_items_sold BIGINT NOT NULL,
    return_rate DOUBLE PRECISION NOT NULL,
    unique_customers BIGINT NOT NULL,
    PRIMARY KEY (order_date, currency)
);

COMMENT ON TABLE gold.order_kpis IS 'Order KPIs of fulfilled orders per order date and currency. Grain: order_date, currency.';

COMMENT ON COLUMN gold.order_kpis.order_date IS 'UTC calendar date of the order''s timestamp.';

COMMENT ON COLUMN gold.order_kpis.currency IS 'The order''s ISO 4217 currency.';

COMMENT ON COLUMN gold.order_kpis.total_orders IS 'Fulfilled orders (completed or returned), with or without items.';

COMMENT ON COLUMN gold.order_kpis.total_revenue IS 'Sum of net revenue; equals the sum of daily_sales.net_revenue before rounding.';

COMMENT ON COLUMN gold.order_kpis.total_items_sold IS 'Sum of item quantities.';

COMMENT ON COLUMN gold.order_kpis.return_rate IS 'Orders with at least one returned item / total_orders.';

COMMENT ON COLUMN gold.order_kpis.unique_customers IS 'Distinct (partner_id, customer_id) of fulfilled orders.';

CREATE TABLE gold.partner_revenue (
    order_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    orders BIGINT NOT NULL,
    net_revenue NUMERIC(18,2) NOT NULL,
    revenue_share DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (order_date, partner_id, currency)
);

CREATE INDEX partner_revenue_partner_id_order_date_idx ON gold.partner_revenue (partner_id, order_date);

COMMENT ON TABLE gold.partner_revenue IS 'Net revenue of fulfilled orders per order date, partner and currency, with the partner''s share. Grain: order_date, partner_id, currency.';

COMMENT ON COLUMN gold.partner_revenue.order_date IS 'UTC calendar date of the order''s timestamp.';

COMMENT ON COLUMN gold.partner_revenue.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.partner_revenue.currency IS 'The order''s ISO 4217 currency.';

COMMENT ON COLUMN gold.partner_revenue.orders IS 'Fulfilled orders.';

COMMENT ON COLUMN gold.partner_revenue.net_revenue IS 'Sum of net revenue.';

COMMENT ON COLUMN gold.partner_revenue.revenue_share IS 'Partner net / all partners'' net that day and currency; 0 when that is 0.';

CREATE TABLE gold.product_changes (
    run_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    inserted BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    unchanged BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    duplicate BIGINT NOT NULL,
    PRIMARY KEY (run_date, partner_id)
);

CREATE INDEX product_changes_partner_id_run_date_idx ON gold.product_changes (partner_id, run_date);

COMMENT ON TABLE gold.product_changes IS 'The products diff of each run: per run date and partner, how many SKUs were inserted, updated, unchanged, skipped (rejected) or duplicate. Grain: run_date, partner_id.';

COMMENT ON COLUMN gold.product_changes.run_date IS 'The run (feed) date.';

COMMENT ON COLUMN gold.product_changes.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.product_changes.inserted IS 'SKUs new to silver.';

COMMENT ON COLUMN gold.product_changes.updated IS 'SKUs whose name, category, brand, price, currency or quantity changed.';

COMMENT ON COLUMN gold.product_changes.unchanged IS 'SKUs sent again with the same values.';

COMMENT ON COLUMN gold.product_changes.skipped IS 'Rows rejected by the contract''s rules (in quarantine).';

COMMENT ON COLUMN gold.product_changes.duplicate IS 'Rows superseded by a newer row of the same SKU.';

CREATE TABLE gold.dim_products (
    partner_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    category TEXT,
    brand TEXT,
    price NUMERIC(18,2) NOT NULL,
    currency TEXT NOT NULL,
    quantity BIGINT,
    first_seen_date DATE NOT NULL,
    last_changed_date DATE NOT NULL,
    PRIMARY KEY (partner_id, sku)
);

COMMENT ON TABLE gold.dim_products IS 'The current state of every product per partner and SKU. Grain: partner_id, sku.';

COMMENT ON COLUMN gold.dim_products.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.dim_products.sku IS 'Stock keeping unit (upper-cased).';

COMMENT ON COLUMN gold.dim_products.name IS 'Product name.';

COMMENT ON COLUMN gold.dim_products.category IS 'Category (Title Case).';

COMMENT ON COLUMN gold.dim_products.brand IS 'Brand.';

COMMENT ON COLUMN gold.dim_products.price IS 'Current price.';

COMMENT ON COLUMN gold.dim_products.currency IS 'Price currency.';

COMMENT ON COLUMN gold.dim_products.quantity IS 'Quantity in the catalog feed.';

COMMENT ON COLUMN gold.dim_products.first_seen_date IS 'Run date of the product''s insert.';

COMMENT ON COLUMN gold.dim_products.last_changed_date IS 'Run date of its last insert or update.';

CREATE TABLE gold.customer_orders (
    partner_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    full_name TEXT,
    email TEXT,
    country TEXT,
    orders BIGINT NOT NULL,
    first_order_date DATE,
    last_order_date DATE,
    lifetime_net_revenue NUMERIC(18,2) NOT NULL,
    PRIMARY KEY (partner_id, customer_id)
);

COMMENT ON TABLE gold.customer_orders IS 'Every customer known from the customers feed or from any order, with lifetime figures of fulfilled orders. Grain: partner_id, customer_id.';

COMMENT ON COLUMN gold.customer_orders.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.customer_orders.customer_id IS 'Customer id.';

COMMENT ON COLUMN gold.customer_orders.full_name IS 'First and last name joined by one space, nulls left out; null when both are.';

COMMENT ON COLUMN gold.customer_orders.email IS 'Email (lower-cased; null when invalid).';

COMMENT ON COLUMN gold.customer_orders.country IS 'ISO 3166 alpha-2 country (null when invalid).';

COMMENT ON COLUMN gold.customer_orders.orders IS 'Fulfilled orders.';

COMMENT ON COLUMN gold.customer_orders.first_order_date IS 'Date of the first fulfilled order.';

COMMENT ON COLUMN gold.customer_orders.last_order_date IS 'Date of the last fulfilled order.';

COMMENT ON COLUMN gold.customer_orders.lifetime_net_revenue IS 'Sum of net revenue of fulfilled orders; 0 when none.';

CREATE TABLE gold.inventory_status (
    snapshot_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    product_name TEXT,
    category TEXT,
    quantity_on_hand BIGINT NOT NULL,
    reorder_level BIGINT NOT NULL,
    needs_reorder BOOLEAN NOT NULL,
    PRIMARY KEY (snapshot_date, partner_id, sku, warehouse)
);

CREATE INDEX inventory_status_partner_id_snapshot_date_idx ON gold.inventory_status (partner_id, snapshot_date);

COMMENT ON TABLE gold.inventory_status IS 'Inventory snapshots per run date, partner, SKU and warehouse, with the current product and the reorder flag. Grain: snapshot_date, partner_id, sku, warehouse.';

COMMENT ON COLUMN gold.inventory_status.snapshot_date IS 'Run date of the inventory feed.';

COMMENT ON COLUMN gold.inventory_status.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.inventory_status.sku IS 'Stock keeping unit.';

COMMENT ON COLUMN gold.inventory_status.warehouse IS 'Warehouse.';

COMMENT ON COLUMN gold.inventory_status.product_name IS 'Current product name; null if the product is unknown.';

COMMENT ON COLUMN gold.inventory_status.category IS 'Current product category; null if the product is unknown.';

COMMENT ON COLUMN gold.inventory_status.quantity_on_hand IS 'Units on hand.';

COMMENT ON COLUMN gold.inventory_status.reorder_level IS 'Reorder level (0 when not sent).';

COMMENT ON COLUMN gold.inventory_status.needs_reorder IS 'quantity_on_hand <= reorder_level.';

CREATE TABLE gold.campaign_performance (
    partner_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT,
    start_date DATE NOT NULL,
    end_date DATE,
    budget NUMERIC(18,2),
    orders BIGINT NOT NULL,
    net_revenue NUMERIC(18,2) NOT NULL,
    roas DOUBLE PRECISION,
    PRIMARY KEY (partner_id, campaign_id)
);

COMMENT ON TABLE gold.campaign_performance IS 'Every campaign present in silver, with the fulfilled orders carrying its id. Grain: partner_id, campaign_id.';

COMMENT ON COLUMN gold.campaign_performance.partner_id IS 'Partner (marketplace seller) id.';

COMMENT ON COLUMN gold.campaign_performance.campaign_id IS 'Campaign id.';

COMMENT ON COLUMN gold.campaign_performance.name IS 'Campaign name.';

COMMENT ON COLUMN gold.campaign_performance.channel IS 'Channel (lower-cased).';

COMMENT ON COLUMN gold.campaign_performance.start_date IS 'Start date.';

COMMENT ON COLUMN gold.campaign_performance.end_date IS 'End date.';

COMMENT ON COLUMN gold.campaign_performance.budget IS 'Budget.';

COMMENT ON COLUMN gold.campaign_performance.orders IS 'Fulfilled orders carrying the campaign_id.';

COMMENT ON COLUMN gold.campaign_performance.net_revenue IS 'Their net revenue.';

COMMENT ON COLUMN gold.campaign_performance.roas IS 'net_revenue / budget; null when the budget is null or 0.';
