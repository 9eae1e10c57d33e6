"""engine layer of the reference pipeline."""
