"""What every plugin shares: hook specs, plugin manager, agent, config, CLI, events, fields, rules language."""
