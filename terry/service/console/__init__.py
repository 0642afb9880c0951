"""The web console of ``terry serve``: server-rendered pages over the same read models as
the CLI and the JSON API, and the pipeline's own verbs behind its approve and reject buttons
(``routes.Console``)."""
