"""Orders: the operator's side of the SM-DP+ (SGP.22 ES2+), sans I/O except the store.

:mod:`~smdpp.orders.states` (the profile state table), :mod:`~smdpp.orders.identifiers`
(ICCID, matchingId, Confirmation Code hash), :mod:`~smdpp.orders.store` (the durable
sqlite order store), :mod:`~smdpp.orders.pool` (UPP files of ``smdpp-data/pool/``),
:mod:`~smdpp.orders.es2p` (DownloadOrder, ConfirmOrder, CancelOrder, ReleaseProfile).
"""
