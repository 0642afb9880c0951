"""Proposals: the state machine and the one read model of a proposal."""
