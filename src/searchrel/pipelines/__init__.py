"""KFP pipelines of searchrel (compiled YAML lives beside them)."""
