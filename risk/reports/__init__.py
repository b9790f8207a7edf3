"""Risk reports: requested, run by workers, finalised once and never changed after."""
