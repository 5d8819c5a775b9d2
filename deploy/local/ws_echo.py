#!/usr/bin/env python3
"""A tiny HTTP + WebSocket echo server, Python standard library only.

Used by deploy/local/run-stack.sh as the demo backend behind nginx:

* a plain HTTP request (any path) gets ``200 OK`` with a short text body, so
  an ``http_2xx`` probe succeeds;
* an RFC 6455 upgrade (``Upgrade: websocket``, ``Connection: Upgrade``,
  ``Sec-WebSocket-Key``, version 13) gets ``101 Switching Protocols``; then
  text and binary messages are echoed back, pings are answered with pongs
  and a close frame is answered with the same close code;
* an upgrade attempt with a missing key or an unsupported version gets 400.

A proxy that drops the ``Upgrade``/``Connection`` headers therefore turns a
WebSocket handshake into a plain ``GET`` that this server answers with 200:
exactly the ``upgrade_ignored`` failure the exporter reports.

    python3 ws_echo.py --listen 127.0.0.1 --port 18082
"""

import argparse
import asyncio
import base64
import hashlib
import logging
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16 * 1024
MAX_PAYLOAD = 1 << 20

log = logging.getLogger("ws_echo")


def accept_key(key: str) -> str:
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def http_response(status: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        f"{extra}"
        "\r\n"
    )
    return head.encode("ascii") + body


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


async def read_frame(reader: asyncio.StreamReader):
    b1, b2 = await reader.readexactly(2)
    fin = bool(b1 & 0x80)
    opcode = b1 & 0x0F
    masked = bool(b2 & 0x80)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if n > MAX_PAYLOAD:
        raise ValueError(f"frame of {n} bytes is too large")
    mask = await reader.readexactly(4) if masked else None
    payload = await reader.readexactly(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload


async def websocket_session(reader, writer, peer):
    while True:
        try:
            fin, opcode, payload = await read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("%s websocket: peer went away", peer)
            return
        if opcode in (0x0, 0x1, 0x2):  # continuation, text, binary: echo
            writer.write(frame(opcode, payload, fin))
        elif opcode == 0x8:  # close: answer with the same code, then hang up
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            log.info("%s websocket: close %s", peer, code)
            writer.write(frame(0x8, payload[:2]))
            await writer.drain()
            return
        elif opcode == 0x9:  # ping
            writer.write(frame(0xA, payload))
        elif opcode == 0xA:  # unsolicited pong
            pass
        else:
            writer.write(frame(0x8, struct.pack("!H", 1002)))
            await writer.drain()
            return
        await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    peer = writer.get_extra_info("peername")
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    try:
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        upgrade = headers.get("upgrade", "").lower()
        connection = [t.strip().lower() for t in headers.get("connection", "").split(",")]
        if upgrade == "websocket" and "upgrade" in connection:
            key = headers.get("sec-websocket-key")
            if not key or headers.get("sec-websocket-version") != "13":
                log.info("%s %s -> 400 (bad upgrade)", peer, request_line)
                writer.write(http_response("400 Bad Request", b"bad websocket upgrade\n",
                                           "Sec-WebSocket-Version: 13\r\n"))
                await writer.drain()
                return
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
                    "\r\n"
                ).encode("ascii")
            )
            await writer.drain()
            log.info("%s %s -> 101", peer, request_line)
            await websocket_session(reader, writer, peer)
        else:
            log.info("%s %s -> 200 (upgrade=%r)", peer, request_line, upgrade)
            body = b"ws_echo: plain HTTP ok (send a WebSocket upgrade to echo)\n"
            if request_line.startswith("HEAD "):
                writer.write(http_response("200 OK", body)[: -len(body)])
            else:
                writer.write(http_response("200 OK", body))
            await writer.drain()
    except (ConnectionError, ValueError) as err:
        log.info("%s error: %s", peer, err)
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18082, help="port (default 18082)")
    parser.add_argument("--quiet", action="store_true", help="log nothing per request")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s ws_echo %(message)s",
    )
    server = await asyncio.start_server(handle, args.listen, args.port, limit=MAX_HEAD)
    log.warning("listening on %s:%d", args.listen, args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
