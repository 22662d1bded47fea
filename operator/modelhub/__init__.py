"""modelhub: a Kubernetes operator that governs ML models (signing, rollout, revocation)."""

__version__ = "0.1.0"
GROUP = "modelhub.dev"
VERSION = "v1alpha1"
