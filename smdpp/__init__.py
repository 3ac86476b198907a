"""smdpp: an SM-DP+ server for GSMA Consumer eSIM Remote SIM Provisioning (SGP.22)."""

__version__ = "0.1.0"


def run() -> int:
    """The server's entry point (``./osmo-smdpp.py``, ``smdpp``, ``python -m smdpp``).

    Ctrl-C while the modules load ends it quietly (exit status 130), as it
    does at any later moment (:func:`smdpp.cli.main`): the signal waits, blocked,
    until the handlers of ``main`` are in place.
    """
    try:
        import _signal  # the C module, at once (``signal`` builds enums first)
        # SIGINT/SIGTERM wait while the modules load: a KeyboardInterrupt raised inside a
        # library's import or a finalizer there can be swallowed, and the server would
        # then run on, deaf to it.  smdpp.cli.main unblocks them once its handlers are in.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})
        from smdpp.cli import main
    except KeyboardInterrupt:  # one that came before the mask
        return 130
    return main()
