-- collect's content hash: md5 of the row's text → hash_record_extended of the row (8 bytes), which
-- the server computes 3–4 × faster (no jsonb / array / numeric text output). The stored products are
-- re-hashed with the same expression as worker/collect/load.py's _hash, so that the next collect
-- sees an unchanged product as unchanged (and the summary EP does not announce every product as U).
UPDATE products SET content_hash = int8send(hash_record_extended(ROW(
    title, description, link, mobile_link, image_link, additional_image_links, price, sale_price,
    currency, availability, availability_date, condition, brand, gtin, mpn, item_group_id,
    product_type, google_product_category, naver_category, shipping_cost, extra), 0));
