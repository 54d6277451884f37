"""Helpers that measure: the CPU tiers of the parity matrix and the emulated aarch64 Linux they use."""
