"""What every process reports about itself: metrics, event history (traces) and logs.

Below `ingest` and `worker`, above `config` and `store`: both sides record through it, and the
CLI reads what it wrote.
"""
