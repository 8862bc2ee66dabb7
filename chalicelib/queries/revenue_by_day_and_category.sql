-- Revenue by day and product category (order lines; cancelled orders left out).
-- Written in the SQL that Athena (Trino) and DuckDB share: it runs unchanged on both.
SELECT oi.order_date,
       p.category,
       CAST(sum(oi.quantity * oi.unit_price - coalesce(oi.discount, 0)) AS DECIMAL(18, 2)) AS revenue,
       count(DISTINCT oi.order_id) AS orders
FROM processed_order_items oi
JOIN processed_orders o ON o.order_id = oi.order_id
JOIN processed_products p ON p.product_id = oi.product_id
WHERE o.status <> 'cancelled'
GROUP BY oi.order_date, p.category
ORDER BY oi.order_date, revenue DESC
