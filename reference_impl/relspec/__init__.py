"""relspec layer of the reference pipeline."""
