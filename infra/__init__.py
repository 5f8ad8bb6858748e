"""Infrastructure as code: the CloudFormation stack and the submitter Lambda's zip builder."""
