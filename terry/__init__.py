"""Terry: an Ansible-backed GitOps remediation engine.

Every problem takes one path: signal -> incident -> diagnosis -> proposal -> gate ->
review -> apply -> verify -> record. Each step lives in the module named after it.
"""

__version__ = "0.1.0"
