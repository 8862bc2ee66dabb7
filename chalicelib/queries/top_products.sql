-- The ten products with the most revenue, with units sold and their category.
SELECT p.product_id,
       p.name,
       p.category,
       sum(oi.quantity) AS units,
       CAST(sum(oi.quantity * oi.unit_price - coalesce(oi.discount, 0)) AS DECIMAL(18, 2)) AS revenue
FROM processed_order_items oi
JOIN processed_products p ON p.product_id = oi.product_id
GROUP BY p.product_id, p.name, p.category
ORDER BY revenue DESC, p.product_id
LIMIT 10
