-- gold.product_changes: one row per (run_date, partner_id) with at least one products feed of
-- that run that was not quarantined. inserted/updated/unchanged from the silver change log;
-- skipped (rejected rows) and duplicate from the per-feed reconciliation.
WITH log AS (
    SELECT _run_date AS run_date, partner_id,
           SUM(CASE WHEN change = 'inserted'  THEN 1 ELSE 0 END) AS inserted,
           SUM(CASE WHEN change = 'updated'   THEN 1 ELSE 0 END) AS updated,
           SUM(CASE WHEN change = 'unchanged' THEN 1 ELSE 0 END) AS unchanged
    FROM product_changes
    GROUP BY _run_date, partner_id
), rec AS (
    SELECT _run_date AS run_date, partner_id, SUM(rejected) AS skipped, SUM(duplicate) AS duplicate
    FROM feed_reconciliation
    WHERE dataset = 'products'
    GROUP BY _run_date, partner_id
)
SELECT
    rec.run_date,
    rec.partner_id,
    COALESCE(log.inserted, 0)  AS inserted,
    COALESCE(log.updated, 0)   AS updated,
    COALESCE(log.unchanged, 0) AS unchanged,
    rec.skipped,
    rec.duplicate
FROM rec
LEFT JOIN log ON log.run_date = rec.run_date AND log.partner_id = rec.partner_id
