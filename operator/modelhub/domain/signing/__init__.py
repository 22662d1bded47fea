"""OpenSSF Model Signing (OMS) v1.0, key- and certificate-based, byte-compatible with ``model_signing`` 1.1.x.

Pure: only the standard library and ``cryptography``. Two steps, as the operator and the loader use them:

* :func:`verify_bundle` - cheap, no file access: strict parsing of the Sigstore bundle v0.3, the ECDSA signature
  (P-256/P-384/P-521 with SHA-256/384/512) over the DSSE PAE of the exact payload bytes, by a trusted key or
  (the certificate method) by a certificate whose chain leads to a trusted CA (see ``_certs``); then the
  in-toto v1 statement (predicate ``https://model_signing/signature/v1.0``) and its subject digest.
* :func:`verify_model_dir` - re-hash every file (or shard), streaming and in parallel, against that manifest.

Plus signing (:func:`sign_model_dir`), hashing (:func:`compute_manifest`, :func:`subject_digest`) and keys.
Every refusal is a :class:`SignatureError` with a CamelCase ``reason`` (see :class:`Reason`) and a precise
``message``; nothing else escapes.
"""

from modelhub.domain.signing._bundle import (
    BUNDLE_MEDIA_TYPE,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    VerifiedSignature,
    build_statement,
    compute_manifest,
    pae,
    sign_model_dir,
    sign_statement,
    subject_digest,
    verify_bundle,
    verify_model_dir,
)
from modelhub.domain.signing._certs import (
    TrustedCA,
    VerifiedCertificate,
    certificate_fingerprints,
    load_trusted_cas,
    parse_pem_certificates,
)
from modelhub.domain.signing._errors import Reason, SignatureError
from modelhub.domain.signing._keys import (
    CURVES,
    curve_name,
    generate_private_key,
    key_fingerprint,
    public_key_pem,
)
from modelhub.domain.signing._manifest import GIT_PATHS, Resource, hash_algorithm_name

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "CURVES",
    "GIT_PATHS",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Reason",
    "Resource",
    "SignatureError",
    "TrustedCA",
    "VerifiedCertificate",
    "VerifiedSignature",
    "build_statement",
    "certificate_fingerprints",
    "compute_manifest",
    "curve_name",
    "generate_private_key",
    "hash_algorithm_name",
    "key_fingerprint",
    "load_trusted_cas",
    "pae",
    "parse_pem_certificates",
    "public_key_pem",
    "sign_model_dir",
    "sign_statement",
    "subject_digest",
    "verify_bundle",
    "verify_model_dir",
]
