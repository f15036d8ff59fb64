"""The ZeroMQ event bus of Salt 2015.8-era masters: a SUB socket where each message is one event body.

`--bus zmq+ipc:///var/run/salt/master/master_event_pub.ipc` or `zmq+tcp://HOST:PORT`; an optional
`?subscribe=PREFIX` filters by tag prefix in the publisher (default: everything). ZeroMQ reconnects by
itself; "connected" is tracked from the socket monitor so `/-/ready` and the metric stay truthful.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import structlog
import zmq
from zmq.utils.monitor import recv_monitor_message

from exporter.health import Health

log = structlog.get_logger("exporter.bus.zmq")

FRAMING = "zmq"


class ZmqSource:
    live = True
    framing = FRAMING

    def __init__(self, address: str, health: Health, max_backoff: float = 30.0) -> None:
        base, _, query = address.partition("?")
        self.endpoint = base.removeprefix("zmq+")
        self.subscribe = parse_qs(query).get("subscribe", [""])[0].encode()
        self.health = health
        self.max_backoff = max_backoff
        self.description = address

    def run(self, emit: Callable[[int, bytes], None], stop: threading.Event) -> None:
        ctx: Any = zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, self.subscribe)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, int(self.max_backoff * 1000))
        sock.setsockopt(zmq.LINGER, 0)
        monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        sock.connect(self.endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        health = self.health
        log.info("bus_connecting", bus=self.description, transport="zmq")
        try:
            while not stop.is_set():
                ready = dict(poller.poll(500))
                if monitor in ready:
                    event = recv_monitor_message(monitor)
                    if event["event"] == zmq.EVENT_CONNECTED:
                        health.connections += 1
                        health.connected = True
                        log.info("bus_connected", bus=self.description, connection=health.connections)
                    elif event["event"] == zmq.EVENT_DISCONNECTED:
                        health.connected = False
                        log.warning("bus_disconnected", bus=self.description, retrying=True)
                if sock in ready:
                    while True:
                        try:
                            message = sock.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        health.bytes_read += len(message)
                        emit(max(health.connections, 1), message)
        finally:
            health.connected = False
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
