"""smdpp: an SM-DP+ server for GSMA Consumer eSIM Remote SIM Provisioning (SGP.22)."""

__version__ = "0.1.0"


def run() -> int:
    """The server's entry point (``./osmo-smdpp.py``, ``smdpp``, ``python -m smdpp``).

    Ctrl-C while the modules load ends it quietly (exit status 130), as it
    does at any later moment (:func:`smdpp.cli.main`).
    """
    try:
        from smdpp.cli import main
    except KeyboardInterrupt:
        return 130
    return main()
