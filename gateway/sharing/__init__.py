"""Conditional sharing (有条件共享): applications, review by the owning agency, grants."""
