"""Traffic control (`tiers`, `apis[].rate_limits`, `upstream.max_requests_per_second`): every
rate-limit level of an API over the stores of fastgate.quota (local GCRA or Redis with leases)."""
