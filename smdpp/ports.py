"""Is a listening address free?  Asked at start, before anything is written to the data folder.

A bind test with the options the listener itself will use (``SO_REUSEADDR``,
as Twisted's listenTCP sets), closed at once: an address in use, or one this
host does not have, stops the start with a line that names the address and
the option that changes it, instead of failing after the test PKI and the
test profile were created.  The port can still be taken between the check
and the listen; the listener then fails as before, with the same hint.
"""
from __future__ import annotations

import errno
import socket

__all__ = ["check_free", "hint"]


def hint(host: str, port: int, option: str, error: OSError) -> str:
    """The one-line reason a listener cannot use ``host:port``, with the way out."""
    if error.errno == errno.EADDRINUSE:
        return (f"{host}:{port} is in use by another program (is another smdpp running?): "
                f"stop it, or choose another port with {option}")
    if error.errno == errno.EACCES:
        return (f"{host}:{port}: no permission to listen on a port below 1024: choose another "
                f"port with {option}, or give the process CAP_NET_BIND_SERVICE")
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host}: not an address of this host ({error.strerror})"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


def check_free(host: str, port: int, option: str) -> None:
    """ValueError (see :func:`hint`) if a TCP listener could not bind ``host:port`` now."""
    if port == 0:
        return  # the kernel picks a free one
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"{host}: cannot resolve the address to listen on: {exc.strerror}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, as listenTCP
    family, kind, proto, _name, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
            sock.listen(1)  # bind alone succeeds beside an SO_REUSEPORT listener
        except OSError as exc:
            raise ValueError(hint(host, port, option, exc)) from None
