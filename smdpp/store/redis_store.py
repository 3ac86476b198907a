"""A session store in Redis, shared by every SM-DP+ process and host (``--store redis://``).

Each session is one hash ``smdpp:session:<TransactionId>`` with two fields:
``state`` (for :meth:`RedisStore.put_if`) and ``record`` (the pickled, sealed
record of :mod:`smdpp.store.record`).  Redis deletes the key by itself at the
session's ``expires`` (``PEXPIREAT``), so :meth:`RedisStore.expire` has nothing
to do.  The seal key is ``session-store.key`` in the data folder: every host
of a deployment needs the same file, or it cannot use a session another host
started (it would see the session without its one-time key).
"""
from __future__ import annotations

from typing import Any

from smdpp.rsp.session import Session, SessionState
from smdpp.store.record import RecordCodec

KEY_PREFIX = "smdpp:session:"

# KEYS[1]: the session key.  ARGV: expected state ("" = no record may exist),
# new state, record, expiry time in ms since the epoch.  Redis runs a script
# atomically, so no other client can write between the check and the write.
_PUT_IF = """
local current = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] == '' then
    if current then return 0 end
elseif current ~= ARGV[1] then
    return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'record', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
"""


def _expire_at_ms(session: Session) -> int:
    return int(session.expires * 1000)


class RedisStore:
    """Sessions in Redis (``redis://host:port/db``, ``rediss://`` for TLS)."""

    def __init__(self, url: str, codec: RecordCodec) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ValueError("--store redis:// needs the python package 'redis' "
                             "(pip install 'smdpp[redis]')") from exc
        self._codec = codec
        self._redis: Any = redis.Redis.from_url(url)
        self._put_if = self._redis.register_script(_PUT_IF)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            self._redis.close()
            raise ValueError(f"cannot reach the Redis session store: {exc}") from exc

    def get(self, transaction_id: str) -> Session | None:
        data = self._redis.hget(KEY_PREFIX + transaction_id, "record")
        return None if data is None else self._codec.loads(transaction_id, data)

    def put(self, session: Session) -> None:
        key = KEY_PREFIX + session.transaction_id
        pipe = self._redis.pipeline(transaction=True)  # MULTI/EXEC: record and expiry together
        pipe.hset(key, mapping={"state": session.state.value,
                                "record": self._codec.dumps(session)})
        pipe.pexpireat(key, _expire_at_ms(session))
        pipe.execute()

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        expected = "" if expected_state is None else expected_state.value
        done = self._put_if(keys=[KEY_PREFIX + session.transaction_id],
                            args=[expected, session.state.value, self._codec.dumps(session),
                                  _expire_at_ms(session)])
        return done == 1

    def delete(self, transaction_id: str) -> None:
        self._redis.delete(KEY_PREFIX + transaction_id)

    def expire(self, now: float) -> int:
        return 0  # every key carries its own PEXPIREAT

    def close(self) -> None:
        self._redis.close()
