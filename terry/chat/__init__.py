"""Talk to Terry from Slack and Discord: commands, buttons and plain language.

``grammar`` (what people type), ``identity`` (who they are, what they may do), ``actions``
(running a command, through the read models and the pipeline), ``reads`` (the read
commands' answers), ``language`` (a sentence to a command, with Claude), ``confirm``
(confirmation buttons), ``slack`` and ``discord`` (each platform's verification, requests and
message shapes). The HTTP routes are ``terry.service.chat_routes``.
"""
