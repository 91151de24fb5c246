"""Benchmarks of tokenpair's stores: ``python -m benchmarks --help``.

Each store runs issue, refresh, verify, authenticate and revoke at every
concurrency level, next to floors measured in the same run (bare joserfc,
bare hashing, one bare round trip to the same server), so that every figure
comes with a ratio that does not depend on the machine. Round trips are
counted, not assumed; on Redis a hand-rolled peer runs alongside. See
docs/benchmarks.md.
"""
