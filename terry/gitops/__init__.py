"""Git: the repository (plumbing), its initialisation, YAML edits in place."""
