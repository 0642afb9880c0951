"""Forges: GitHub's REST API through PyGithub, pull request text, review commands, webhook
signatures."""
