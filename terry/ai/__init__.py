"""Diagnosis with Claude, made safe: when no remedy matches, ask Claude for one.

``request`` builds a structured Messages API request (untrusted text only inside fenced JSON
blocks, one forced tool, ``propose_fix``); ``answer`` treats the tool input as untrusted and
validates it against the schema, the catalogue, the module allow-list and the incident's
host; ``client`` sends the request with the real ``anthropic`` client and maps its errors.
Nothing here imports ``anthropic`` except ``client``.
"""
