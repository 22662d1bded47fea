"""CamelCase reasons of conditions, history entries and Events (signature refusals are `domain.signing.Reason`)."""

from __future__ import annotations

# ModelVersion SignatureVerified (besides the signature refusals of domain.signing.Reason)
VERIFIED = "Verified"
INVALID_SPEC = "InvalidSpec"
MODEL_NOT_FOUND = "ModelNotFound"
UNTRUSTED_KEY = "UntrustedKey"
UNTRUSTED_CERTIFICATE = "UntrustedCertificate"
DIGEST_MISMATCH = "DigestMismatch"
BUNDLE_NOT_FOUND = "BundleNotFound"
BUNDLE_UNREACHABLE = "BundleUnreachable"
BUNDLE_TOO_SLOW = "BundleTooSlow"  # the store sent too slowly or not within the deadline
BUNDLE_TOO_LARGE = "BundleTooLarge"
BUNDLE_REFUSED = "BundleRefused"  # a location the operator may not fetch (file outside its roots, metadata address)
MALFORMED_BUNDLE = "MalformedBundle"  # the content is not a Sigstore bundle (never quoted)
CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
INVALID_CREDENTIALS = "InvalidCredentials"
CREDENTIALS_FORBIDDEN = "CredentialsForbidden"  # the operator may not read the named Secret
NOT_YET_VERIFIED = "NotYetVerified"  # the rollout's view of a version this operator has not verified yet
STORE_CA_NOT_FOUND = "StoreCANotFound"  # spec.artifact.caConfigMapRef names a missing ConfigMap or key
# ModelVersion Approved
APPROVED = "Approved"
NOT_REQUIRED = "NotRequired"
AWAITING_APPROVAL = "AwaitingApproval"
# ModelVersion Revoked (REVOKED also: eligibility, Model Ready)
REVOKED = "Revoked"
NOT_REVOKED = "NotRevoked"
# ModelVersion Available / Ready
NOT_PROMOTED = "NotPromoted"
UNSCHEDULABLE = "Unschedulable"
ARTIFACT_REJECTED = "ArtifactRejected"  # the loader init container refused the artifact (its reason in the message)
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
SERVING = "Serving"  # also Model Ready
SCALED_TO_ZERO = "ScaledToZero"
PROGRESSING = "Progressing"

# Eligibility of a version for serving (also on the Model's Ready condition)
ELIGIBLE = "Eligible"
NOT_VERIFIED = "NotVerified"
NOT_APPROVED = "NotApproved"
WRONG_MODEL = "WrongModel"
DELETING = "Deleting"
# Model Ready
VERSION_NOT_FOUND = "VersionNotFound"
NO_ELIGIBLE_VERSION = "NoEligibleVersion"
NO_PROMOTION = "NoPromotion"
FELL_BACK = "FellBack"
INVALID_SERVING = "InvalidServing"
# Model Progressing
CANARY_ACTIVE = "CanaryActive"
NO_CANARY = "NoCanary"
NO_STABLE = "NoStable"
SAME_AS_STABLE = "SameAsStable"
ZERO_WEIGHT = "ZeroWeight"
INVALID_WEIGHT = "InvalidWeight"
# Model TrafficRouted (and Events)
ROUTE_APPLIED = "RouteApplied"
GATEWAY_API_UNAVAILABLE = "GatewayAPIUnavailable"  # the HTTPRoute API is not served: replica share instead
TRAFFIC_SHIFTED = "TrafficShifted"  # Event: the applied backend weights changed
# Model history entries and Events
PROMOTED = "Promoted"
ROLLED_BACK = "RolledBack"
SERVING_STOPPED = "ServingStopped"
CANARY_STARTED = "CanaryStarted"
CANARY_STOPPED = "CanaryStopped"
CANARY_WEIGHT_CHANGED = "CanaryWeightChanged"

# Revocation Enforced
ENFORCED = "Enforced"
TEARING_DOWN = "TearingDown"
# Revocation Events
TORN_DOWN = "TornDown"
# Workload Events
MALFORMED_DIGEST = "MalformedDigest"
