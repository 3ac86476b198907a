"""The RSP engine (sans I/O): ES9+ functions, session states, SGP.22 status codes."""
