"""Requirements: what must be done before which stage of a deal (API.md v1.1, "Requirements")."""
