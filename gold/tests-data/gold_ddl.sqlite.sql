CREATE TABLE daily_sales (
    order_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    category TEXT NOT NULL,
    currency TEXT NOT NULL,
    orders INTEGER NOT NULL,
    items_sold INTEGER NOT NULL,
    gross_revenue NUMERIC(18,2) NOT NULL,
    returned_revenue NUMERIC(18,2) NOT NULL,
    net_revenue NUMERIC(18,2) NOT NULL,
    PRIMARY KEY (order_date, partner_id, category, currency)
);

CREATE INDEX daily_sales_partner_id_order_date_idx ON daily_sales (partner_id, order_date);

CREATE TABLE category_kpis (
    order_date DATE NOT NULL,
    category TEXT NOT NULL,
    currency TEXT NOT NULL,
    daily_revenue NUMERIC(18,2) NOT NULL,
    avg_order_value NUMERIC(18,2) NOT NULL,
    avg_return_rate REAL NOT NULL,
    PRIMARY KEY (order_date, category, currency)
);

CREATE TABLE order_kpis (
    order_date DATE NOT NULL,
    currency TEXT NOT NULL,
    total_orders INTEGER NOT NULL,
    total_revenue NUMERIC(18,2) NOT NULL,
    total_items_sold INTEGER NOT NULL,
    return_rate REAL NOT NULL,
    unique_customers INTEGER NOT NULL,
    PRIMARY KEY (order_date, currency)
);

CREATE TABLE partner_revenue (
    order_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    orders INTEGER NOT NULL,
    net_revenue NUMERIC(18,2) NOT NULL,
    revenue_share REAL NOT NULL,
    PRIMARY KEY (order_date, partner_id, currency)
);

CREATE INDEX partner_revenue_partner_id_order_date_idx ON partner_revenue (partner_id, order_date);

CREATE TABLE product_changes (
    run_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    inserted INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    duplicate INTEGER NOT NULL,
    PRIMARY KEY (run_date, partner_id)
);

CREATE INDEX product_changes_partner_id_run_date_idx ON product_changes (partner_id, run_date);

CREATE TABLE dim_products (
    partner_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    category TEXT,
    brand TEXT,
    price NUMERIC(18,2) NOT NULL,
    currency TEXT NOT NULL,
    quantity INTEGER,
    first_seen_date DATE NOT NULL,
    last_changed_date DATE NOT NULL,
    PRIMARY KEY (partner_id, sku)
);

CREATE TABLE customer_orders (
    partner_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    full_name TEXT,
    email TEXT,
    country TEXT,
    orders INTEGER NOT NULL,
    first_order_date DATE,
    last_order_date DATE,
    lifetime_net_revenue NUMERIC(18,2) NOT NULL,
    PRIMARY KEY (partner_id, customer_id)
);

CREATE TABLE inventory_status (
    snapshot_date DATE NOT NULL,
    partner_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    product_name TEXT,
    category TEXT,
    quantity_on_hand INTEGER NOT NULL,
    reorder_level INTEGER NOT NULL,
    needs_reorder BOOLEAN NOT NULL,
    PRIMARY KEY (snapshot_date, partner_id, sku, warehouse)
);

CREATE INDEX inventory_status_partner_id_snapshot_date_idx ON inventory_status (partner_id, snapshot_date);

CREATE TABLE campaign_performance (
    partner_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT,
    start_date DATE NOT NULL,
    end_date DATE,
    budget NUMERIC(18,2),
    orders INTEGER NOT NULL,
    net_revenue NUMERIC(18,2) NOT NULL,
    roas REAL,
    PRIMARY KEY (partner_id, campaign_id)
);
