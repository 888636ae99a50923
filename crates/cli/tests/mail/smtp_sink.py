"""A real SMTP server (aiosmtpd) for the tests: every message accepted is
appended as one JSON line to the log file (Message-ID, envelope
recipients, Subject, decoded text), written and fsynced before the server
answers 250, so what the log holds is what the server accepted.

usage: smtp_sink.py PORT LOGFILE [RCPT_DELAY_MS]

RCPT_DELAY_MS slows each message down before its data is sent (as a busy
server would), so that a test can kill the sender mid-conversation.
"""
import asyncio
import json
import os
import sys
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, log, delay):
        self.log = log
        self.delay = delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.delay:
            await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        body = msg.get_body(preferencelist=("plain",))
        line = json.dumps({
            "message_id": msg.get("Message-ID", ""),
            "from": msg.get("From", ""),
            "to": envelope.rcpt_tos,
            "subject": str(msg.get("Subject", "")),
            "text": body.get_content() if body is not None else "",
        }, ensure_ascii=False)
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        return "250 Message accepted for delivery"


def main():
    port, log = int(sys.argv[1]), sys.argv[2]
    delay = int(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0
    c = Controller(Sink(log, delay), hostname="127.0.0.1", port=port)
    c.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin (or dies)
    finally:
        c.stop()


main()
