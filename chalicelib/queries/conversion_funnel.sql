-- Conversion funnel from the clickstream: customers who viewed, added to cart, purchased.
SELECT count(DISTINCT CASE WHEN event_type = 'view' THEN customer_id END) AS viewed,
       count(DISTINCT CASE WHEN event_type = 'add_to_cart' THEN customer_id END) AS added_to_cart,
       count(DISTINCT CASE WHEN event_type = 'purchase' THEN customer_id END) AS purchased,
       round(100.0 * count(DISTINCT CASE WHEN event_type = 'purchase' THEN customer_id END)
             / nullif(count(DISTINCT CASE WHEN event_type = 'view' THEN customer_id END), 0), 2) AS view_to_purchase_percent
FROM processed_clickstream
WHERE customer_id IS NOT NULL
