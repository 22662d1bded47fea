"""The one exception the signing module raises, and its reasons."""

from __future__ import annotations


class Reason:
    """The CamelCase reasons a :class:`SignatureError` carries (stable: they end up in status conditions)."""

    MALFORMED_BUNDLE = "MalformedBundle"  # the bundle or its statement is not a well-formed OMS v1.0 signature
    BAD_SIGNATURE = "BadSignature"  # the key named by the hint is trusted but the signature does not verify
    UNTRUSTED_KEY = "UntrustedKey"  # no trusted key verifies the signature
    INVALID_KEY = "InvalidKey"  # a key given to us (trusted public key, signing key) is unusable
    DIGEST_MISMATCH = "DigestMismatch"  # the subject digest does not match the listed resources
    FILE_MISMATCH = "FileMismatch"  # a file (or shard) does not hash to its signed digest, or has another size
    MISSING_FILE = "MissingFile"  # a signed file is absent (or the model directory itself is)
    EXTRA_FILE = "ExtraFile"  # a file is present that the signature does not list (nor ignore)
    UNSAFE_PATH = "UnsafePath"  # absolute, '..', empty names; symlinks not allowed; fifos, devices, sockets
    UNSUPPORTED_ALGORITHM = "UnsupportedAlgorithm"  # hash, curve, key type or signature kind we do not support
    EMPTY_MODEL = "EmptyModel"  # nothing to sign, or a signature that covers no file
    READ_ERROR = "ReadError"  # a file could not be read (permissions, I/O error)
    # The certificate method.
    UNTRUSTED_CERTIFICATE = "UntrustedCertificate"  # the signing certificate does not chain to a trusted CA
    CERTIFICATE_EXPIRED = "CertificateExpired"  # a certificate of the path was not valid when the leaf was issued
    INVALID_CERTIFICATE_CHAIN = "InvalidCertificateChain"  # malformed, oversized, or breaks RFC 5280 path rules
    CERTIFICATE_NOT_FOR_SIGNING = "CertificateNotForSigning"  # neither digitalSignature nor codeSigning usage
    INVALID_CERTIFICATE = "InvalidCertificate"  # a certificate given to us (trusted CA, signing cert) is unusable


class SignatureError(Exception):
    """A signature, a key or a model directory was refused.

    ``reason`` is one of the :class:`Reason` constants; ``message`` is a precise sentence naming the file,
    field or key involved, with the expected and actual values where that helps.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self):  # keep it picklable (ProcessPool, multiprocessing) despite the 2-argument __init__
        return (type(self), (self.reason, self.message))
