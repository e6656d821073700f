"""The implementations of ``python -m include.infra`` commands, grouped by concern.

* :mod:`.common`: configuration, AWS context and the options every command shares;
* :mod:`.data`: ``create-bucket``, ``upload-dataset``, ``download-results``;
* :mod:`.roles`: ``create-roles``, ``print-roles``;
* :mod:`.resources`: ``status``, ``terminate``, ``cleanup``;
* :mod:`.preflight`: ``preflight`` (its checks live in :mod:`include.infra.preflight`).

The parser and ``main`` are in :mod:`include.infra.cli`.
"""
