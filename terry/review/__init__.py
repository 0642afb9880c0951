"""Review: local (the CLI) and forge (GitHub pull requests)."""
