"""The audit record: one hash chain of events per company (API.md v1.1, "Audit events")."""
