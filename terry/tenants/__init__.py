"""Tenants: who owns which hosts, what Terry may do there on its own, and who approves.

Defined in the GitOps repository (``policies/tenants.yml``, docs/tenants.md) and changed by
reviewed commits like any policy; ``model.py`` holds the typed tenants and host placement,
``loader.py`` reads the file with errors that name it and the key.
"""
