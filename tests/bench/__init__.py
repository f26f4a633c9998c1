"""Benchmarks, run by ``make bench`` (``python -m tests.bench``); not part of the test suite.

Every ``bench_<name>.py`` module here that has a ``main()`` is a benchmark. Each measures
against a baseline in the same run, so the ratios hold on any machine.
"""
