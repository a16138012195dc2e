"""A mutation fuzzer for ``probe`` and ``check``: see ``tests/fuzz/run.py``."""
