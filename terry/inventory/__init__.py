"""The inventory: hosts, checks, in-place edits and edit proposals."""
