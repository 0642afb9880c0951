"""Demos: the example hosts, the local demo, the lab demo."""
