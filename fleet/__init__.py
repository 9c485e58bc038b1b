"""The `pushwoosh-fleet` command line: run, preview, ping, check-config, dlq."""
