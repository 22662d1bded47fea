"""The operator's one vocabulary: condition types, reasons, labels and annotations, one module each.

Everything that writes or reads one of these names (API types, domain, handlers, CLI) imports it from here, so a
name is spelled once. This package imports nothing of the project: it sits below every layer.

By convention modules import `conditions as C`, `reasons as R`, `labels as L` and `annotations as A`
(`annotations` by its own name would clash with `from __future__ import annotations`).
"""
