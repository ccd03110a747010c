"""The audit-service: validates events, chains and stores them in PostgreSQL, answers
queries. Run it with `python -m audit_svc`; embed it with `AuditApp`."""

__version__ = "0.1.0"
