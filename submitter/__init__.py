"""catalog-batch submitter: plans a night, submits its array jobs, runs it locally, operates it."""
