"""Who a caller is and what it may do: principals, the writer/reader policy
(`audit_svc/policy.toml`), and bearer tokens of the user-service. Domain code: the
transport hands in what it verified (SPIFFE id, token, loopback peer) and gets a
`Principal` back; nothing here imports grpc."""

from audit_svc.access.policy import Policy, PolicyError, load_policy
from audit_svc.access.principal import ADMIN, PII_READER, READER, Kind, Principal

__all__ = [
    "ADMIN",
    "PII_READER",
    "READER",
    "Kind",
    "Policy",
    "PolicyError",
    "Principal",
    "load_policy",
]
