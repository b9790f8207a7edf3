"""RQ jobs, the worker, scheduled sweeps and (later) webhook deliveries."""
