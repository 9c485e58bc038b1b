"""HTTP ingest: Segment events in, validated, deduplicated and queued on Redis Streams."""
