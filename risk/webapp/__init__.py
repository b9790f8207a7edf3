"""The agents' and reviewers' web page under `/app/` (API.md v1.1): same keys, roles and tenancy as the API."""
