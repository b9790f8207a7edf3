"""The HTTP layer shared by every blueprint: request boundary, body parsing, fields, errors, docs."""
