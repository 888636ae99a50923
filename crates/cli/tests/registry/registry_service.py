"""A population registry service for the tests, speaking the protocol of
docs/registry-api.md over HTTPS: it answers from a residents CSV (as
`hallmark registry synth` writes it), checks the bearer token, and behaves
as the file MODE says at each request: "ok", "down" (503), or "slow"
(answers after 5 s). Each request's size is logged, one line each.

usage: registry_service.py PORT RESIDENTS.csv TOKEN MODE_FILE LOG CERT KEY
"""

import csv
import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, residents_csv, token, mode_file, log, cert, key = sys.argv[1:8]
with open(residents_csv, encoding="utf-8") as f:
    residents = {r["id_number"]: r for r in csv.DictReader(f)}


class Registry(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        asked = json.loads(self.rfile.read(length))
        with open(mode_file, encoding="utf-8") as f:
            mode = f.read().strip()
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"mode": mode, "people": len(asked["people"])}) + "\n")
        if mode == "down":
            return self.answer(503, {"error": "maintenance"})
        if mode == "slow":
            time.sleep(5)
        if self.headers.get("Authorization") != f"Bearer {token}":
            return self.answer(401, {"error": "unknown client"})
        answers = []
        for p in asked["people"]:
            r = residents.get(p["id_number"])
            if r is None:
                answers.append("unknown")
            elif all(r[k] == p[k] for k in ("name_zh", "name_en", "date_of_birth")):
                answers.append("confirmed")
            else:
                answers.append("mismatch")
        self.answer(200, {"answers": answers})


server = ThreadingHTTPServer(("127.0.0.1", int(port)), Registry)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
server.socket = tls.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
