"""smdpp: an SM-DP+ server for GSMA Consumer eSIM Remote SIM Provisioning (SGP.22)."""

__version__ = "0.1.0"
