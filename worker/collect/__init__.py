"""The collect task: stream a shop's catalog from its source into PostgreSQL, normalised."""
