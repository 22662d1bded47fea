"""Shared e2e helpers: real keys, real signed model directories, and the manifests that reference them."""

from __future__ import annotations

from tests.e2e.kubehelp import apply
from tests.support.manifests import (  # noqa: F401 - re-exported for the e2e modules
    Key,
    Signed,
    keyring_manifest,
    make_model,
    model_manifest,
    new_key,
    version_manifest,
)


def keyring(namespace: str, name: str, keys: dict[str, Key]) -> None:
    apply(keyring_manifest(name, keys), namespace)
