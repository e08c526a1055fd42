"""The verbs: compute, apply, check; each orchestrates sources, readers, reduce, fingerprints and
the manifest on an engine, and prints nothing (progress goes to a callback)."""
