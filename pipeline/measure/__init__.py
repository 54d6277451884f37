"""What measures: one runner interface over the runtimes, the speed ablation, device JSONs, the CPU tiers of the
parity matrix and the emulated aarch64 Linux they use."""
