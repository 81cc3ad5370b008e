"""Studies: the measurements behind a shipped constant, rule or decision."""
