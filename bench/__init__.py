"""Benchmarks of tinycnn against PyTorch on the same machine, in the same run."""
