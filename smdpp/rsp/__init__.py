"""The RSP core (sans I/O): the engine of the ES9+ functions, the session state table,
the messages in and out, the session store interface."""
