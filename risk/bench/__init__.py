"""`presign bench`: Presign measured against the limits that bound it, side by side in one run.

Every figure is a ratio against a limit measured in the same run on the same machine: the slowest
provider and RQ's own floor for report latency, RQ's no-op throughput for report throughput, a
hello-world endpoint under the same gunicorn for the gate, and so on. Everything runs as real
processes (gunicorn, `presign worker`, a provider server, a load generator) on a temporary instance.
See docs/PERFORMANCE.md for the latest full run.
"""
