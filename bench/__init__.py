"""Benchmark harness for pretrade-guard: ``python -m bench.run`` (see bench/README.md).

Never imported by ``app/``; benchmarks are never timed assertions in the test suite (a smoke
test only checks that the harness runs to the end).
"""
