"""catalog-batch worker: one image, three tasks (collect → feed, images), routed by ``python -m worker``."""
