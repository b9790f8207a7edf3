"""The signing gate: answers the contract system before each stage from a fresh enough report."""
