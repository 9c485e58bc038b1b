"""Settings and mappings, loaded from the environment and validated once at start-up."""
