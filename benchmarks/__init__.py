"""tinyinception's benchmark suite: ``python -m benchmarks --suite ops|blocks|models|train``."""
