"""Training-data quality branch: how good can a concept lens get on what the subject model writes."""
