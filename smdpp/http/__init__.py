"""ES9+ over HTTP: thin Klein routes around the RSP engine."""
