-- collect's content hash now covers the variant attributes and the sale window (migration 0007's
-- columns, filled by collect since): the row hashed by worker/collect/load.py's _hash gained those
-- columns, between shipping_cost and extra. The stored products are re-hashed with the same
-- expression, so that the next collect sees an unchanged product as unchanged (and the summary EP
-- does not announce every product as U after an upgrade).
UPDATE products SET content_hash = int8send(hash_record_extended(ROW(
    title, description, link, mobile_link, image_link, additional_image_links, price, sale_price,
    currency, availability, availability_date, condition, brand, gtin, mpn, item_group_id,
    product_type, google_product_category, naver_category, shipping_cost, color, size, gender,
    age_group, material, pattern, size_system, size_type, sale_price_start, sale_price_end,
    extra), 0));
