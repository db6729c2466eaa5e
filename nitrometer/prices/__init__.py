"""EC2, Reserved Instance and Savings Plans rates from the AWS Price List bulk API, cached
per region for `nitrometer savings` and the agent's price metrics."""
