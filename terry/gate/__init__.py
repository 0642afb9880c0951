"""The gate: its input, the policy engine (and its child process), learning."""
