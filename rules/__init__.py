"""The default ruleset, shipped as package data (``default_rules.yaml``)."""
