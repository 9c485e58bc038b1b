"""The fleet's benchmark: `python -m bench` starts Redis, ingest, a worker, a recording Pushwoosh
stand-in, a load generator and a one-task-per-event baseline on 127.0.0.1, measures them in one
run and ends with one JSON line. See `bench/__main__.py`.
"""
