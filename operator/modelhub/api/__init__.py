"""modelhub.api: the modelhub.dev/v1alpha1 API as pydantic types (pure: pydantic, stdlib and yaml only).

- ``types``: every resource, spec and status type in one namespace (``from modelhub.api import types as api``)
- ``model``, ``modelversion``, ``revocation``, ``serving``, ``common``: where they are defined
- ``conditions``: ``set_condition`` / ``get_condition`` on plain status dicts
- ``semver``: SemVer 2.0 parsing, precedence and ``matches_range``
- ``crdgen``: ``python -m modelhub.api.crdgen [--out crds] [--check]`` writes crds/*.yaml from the types
"""
