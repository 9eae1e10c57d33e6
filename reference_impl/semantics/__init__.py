"""semantics layer of the reference pipeline."""
