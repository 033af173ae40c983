"""A real DNS server on loopback for the tests: dnslib's DNSServer answering from a zone given as
zone file text, over UDP and TCP on a free port."""

from __future__ import annotations

from typing import Any

from dnslib.server import DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver


class ZoneServer:
    """``with ZoneServer(zone_text) as resolver:`` where ``resolver`` is ``127.0.0.1:PORT``."""

    def __init__(self, zone: str) -> None:
        from conftest import free_port

        self.port = free_port()
        resolver = ZoneResolver(zone)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self.servers: list[Any] = [
            DNSServer(resolver, port=self.port, address="127.0.0.1", logger=quiet),
            DNSServer(resolver, port=self.port, address="127.0.0.1", logger=quiet, tcp=True),
        ]

    def __enter__(self) -> str:
        for server in self.servers:
            server.start_thread()
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()
