"""What every task and the submitter share: settings, logging, errors, the database, the product model."""
