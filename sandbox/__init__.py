"""Sandbox: deterministic synthetic data and five sample agency systems served over HTTP.

* :class:`sandbox.generator.Dataset` — the synthetic dataset in standard form;
* :func:`sandbox.systems.create_app` — Starlette app of one agency's native system;
* ``python -m sandbox serve|serve-all|dump`` — the CLI (see ``__main__``);
* ``NATIVE.md`` — native routes, auth, fields and codes of each system.
"""
