"""Operations: liveness, readiness and metrics for load balancers and monitoring."""
