"""A real SMTP server for the monitor tests: aiosmtpd on 127.0.0.1, on a free port.

Usage: python3 smtp_sink.py DIR
Prints the port it listens on, then writes each message it receives to DIR/N.eml
(the envelope recipients on the first line, then the message as sent). Runs until killed.
"""

import asyncio
import itertools
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        path = os.path.join(self.directory, f"{n}.eml")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(("To: " + ", ".join(envelope.rcpt_tos) + "\n").encode())
            f.write(envelope.original_content or envelope.content)
        os.replace(tmp, path)
        return "250 Message accepted for delivery"


async def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    sink = Sink(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="smtp-sink.test"), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
