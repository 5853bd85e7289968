"""A DNS server for tests: a CDN's GeoDNS, answering by EDNS Client Subnet (RFC 7871).

It enforces what a real resolver path relies on and fails loudly otherwise: one
question, opcode QUERY, recursion desired (a stub resolver's query), an ECS option
whose address has no bits set past its source prefix (RFC 7871 section 6: FORMERR), an
answer that echoes the option with its scope. Names it does not know are NXDOMAIN.
UDP answers over `udp_limit` bytes are truncated (TC), as RFC 1035 requires, so a
client must ask again over TCP. Every question is logged for the tests to check.
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class Asked:
    name: str
    rdtype: str
    subnet: str | None
    transport: str


@dataclass
class Zone:
    # name -> CNAME target
    cnames: dict[str, str] = field(default_factory=dict)
    # name -> [(network or None for everyone else, [addresses])], the first match wins
    addresses: dict[str, list[tuple[str | None, list[str]]]] = field(default_factory=dict)
    ttl: int = 60
    udp_limit: int = 512
    # Names asked of this server that it never answers (a resolver that times out).
    silent: set[str] = field(default_factory=set)


class DnsDouble:
    """Serves `zone` over UDP and TCP on 127.0.0.1 (one port for both)."""

    def __init__(self, zone: Zone) -> None:
        # Names compare case-insensitively (RFC 4343).
        zone.cnames = {k.lower(): v.lower() for k, v in zone.cnames.items()}
        zone.addresses = {k.lower(): v for k, v in zone.addresses.items()}
        self.zone = zone
        self.asked: list[Asked] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        double = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = double.answer(data, "udp")
                if out is not None:
                    sock.sendto(out, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                (n,) = struct.unpack("!H", head)
                data = b""
                while len(data) < n:
                    more = self.request.recv(n - len(data))
                    if not more:
                        return
                    data += more
                out = double.answer(data, "tcp")
                if out is not None:
                    self.request.sendall(struct.pack("!H", len(out)) + out)

        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tcp)
        port = self._tcp.server_address[1]
        self._udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), Udp)
        self.port = port
        self.address = f"127.0.0.1:{port}"
        for server in (self._tcp, self._udp):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self._tcp, self._udp):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> DnsDouble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refuse(self, why: str) -> None:
        with self._lock:
            self.refused.append(why)

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception as e:
            self._refuse(f"not a DNS message: {e}")
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            self._refuse("not one QUERY question")
            reply.set_rcode(dns.rcode.FORMERR)
            return reply.to_wire()
        if not query.flags & dns.flags.RD:
            self._refuse("recursion not desired: not a stub resolver's query")
            reply.set_rcode(dns.rcode.REFUSED)
            return reply.to_wire()
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        ecs = next((o for o in query.options if isinstance(o, dns.edns.ECSOption)), None)
        subnet = None
        if ecs is not None:
            net = ipaddress.ip_network(f"{ecs.address}/{ecs.srclen}", strict=False)
            if str(net.network_address) != ecs.address:
                self._refuse(f"ECS address {ecs.address} has bits past /{ecs.srclen}")
                reply.set_rcode(dns.rcode.FORMERR)
                return reply.to_wire()
            subnet = str(net)
        with self._lock:
            self.asked.append(Asked(name, dns.rdatatype.to_text(q.rdtype), subnet, transport))
        if name in self.zone.silent:
            return None
        target = name
        known = False
        for _ in range(8):
            nxt = self.zone.cnames.get(target)
            if nxt is None:
                break
            known = True
            reply.answer.append(
                dns.rrset.from_text(target + ".", self.zone.ttl, "IN", "CNAME", nxt + ".")
            )
            target = nxt
        scope = 0
        if target in self.zone.addresses:
            known = True
            ips, scope = self._pick(target, subnet)
            want = [ip for ip in ips if _rdtype(ip) == q.rdtype]
            if want:
                reply.answer.append(
                    dns.rrset.from_text_list(
                        target + ".", self.zone.ttl, "IN", dns.rdatatype.to_text(q.rdtype), want
                    )
                )
        if not known:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if ecs is not None:
            reply.use_edns(0, options=[dns.edns.ECSOption(ecs.address, ecs.srclen, scope)])
        out = reply.to_wire()
        if transport == "udp" and len(out) > self.zone.udp_limit:
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC
            return short.to_wire()
        return out

    def _pick(self, name: str, subnet: str | None) -> tuple[list[str], int]:
        for net, ips in self.zone.addresses[name]:
            if net is None:
                return ips, 0
            if subnet is not None and ipaddress.ip_network(subnet).subnet_of(
                ipaddress.ip_network(net)  # type: ignore[arg-type]
            ):
                return ips, ipaddress.ip_network(net).prefixlen
        return [], 0


def _rdtype(ip: str) -> int:
    return dns.rdatatype.A if ipaddress.ip_address(ip).version == 4 else dns.rdatatype.AAAA


def silent_udp() -> tuple[socket.socket, str]:
    """A UDP port that receives and never answers: a resolver that is down."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, f"127.0.0.1:{s.getsockname()[1]}"


def as_dict(a: Asked) -> dict[str, Any]:
    return {"name": a.name, "rdtype": a.rdtype, "subnet": a.subnet, "transport": a.transport}
