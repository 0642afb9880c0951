"""Fakes of the external APIs Terry talks to: GitHub (``github``), Argo CD (``argocd``) and
Anthropic's Messages API (``anthropic``).

A fake here is not a mock: it is a local HTTP server (``local_server.LocalServer``, a
Starlette app under uvicorn on a free loopback port) that speaks the service's real public
API (its paths, payload shapes, status codes, error bodies, pagination and rate-limit
headers, as the service documents them), and the test points the real client library at
it (PyGithub, the ``anthropic`` client, Terry's httpx client for Argo CD). Terry's code runs
unchanged; only the base URL differs. Each fake also has controls for the tests to play the
people and the outages on the other side (a review, a comment, a 502, a rate limit).

Import them by their full path (``from tests.fakes.github import FakeGitHub``): the module
names are the services' names, so this directory must never be put on ``sys.path`` itself,
where ``github.py`` and ``anthropic.py`` would shadow the real client libraries.
"""
