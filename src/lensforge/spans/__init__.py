"""The span branch: rule-labelled expansion spans in windows of real price bars (research note 004)."""
