"""The four pre-signing checks (title, fees, leak, authenticity) and their provider adapters."""
