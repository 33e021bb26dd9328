"""An example durable pull consumer of stream ``LEDGER`` (``license-ledger tail``).

Durable: its position lives in JetStream, so a restarted tail resumes where it stopped. Each
message is acknowledged after the handler returns (at-least-once); the handler sees the event id
(``Nats-Msg-Id``) so it can drop the rare redelivery of a message whose ack was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from consumers.nats.publisher import STREAM, ensure_stream, token

__all__ = ["tail"]

Handler = Callable[[str, dict[str, Any]], None]


def filter_subject(org: str | None) -> str:
    return f"ledger.{token(org)}.>" if org else "ledger.>"


async def tail(
    url: str,
    handler: Handler,
    *,
    org: str | None = None,
    durable: str = "ledger-tail",
    stop: threading.Event | None = None,
    batch: int = 256,
) -> None:
    """Fetch, hand over and ack messages until ``stop`` is set; rides out NATS restarts."""
    import nats
    from nats.errors import TimeoutError as NatsTimeoutError

    stop = stop or threading.Event()
    while not stop.is_set():
        nc = None
        try:
            nc = await nats.connect(
                url,
                name="license-ledger-tail",
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            )
            js = nc.jetstream(timeout=5)
            await ensure_stream(js)
            sub = await js.pull_subscribe(
                filter_subject(org), durable=token(durable), stream=STREAM
            )
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(batch, timeout=0.5)
                except (TimeoutError, NatsTimeoutError):
                    continue
                for msg in msgs:
                    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
                    handler(msg_id, json.loads(msg.data))
                    await msg.ack()
        except Exception:
            if stop.is_set():
                break
            await asyncio.sleep(0.5)
        finally:
            if nc is not None:
                # Best effort: the connection may already be broken.
                with contextlib.suppress(Exception):
                    await nc.close()
