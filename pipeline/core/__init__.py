"""What every stage shares: atomic writes and records (stage), Make's rules (deps), JSON Schemas,
third-party log filters (quiet) and progress lines."""
