"""Benchmarks of gqlchannels side by side with Strawberry's Channels consumer and a bare
Channels consumer (the floor), each served by a real ``daphne`` process.

Run ``python -m benchmarks.compare --quick`` (about 3 minutes) or without ``--quick`` (about
15 minutes); see ``benchmarks/README.md``. Nothing here is imported by the gqlchannels package.
"""
