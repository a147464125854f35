"""Fuzz harnesses (atheris/libFuzzer); see README.md. Replayed by tests/test_fuzz_regressions.py."""
