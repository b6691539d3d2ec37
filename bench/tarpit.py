#!/usr/bin/env python3
"""A hung MTA for the noisy-neighbour benchmark: accepts TCP on 127.0.0.1:PORT and never sends a byte.

    tarpit.py PORT

Each accepted connection is held open (and what it sends is read and dropped) until the peer closes
it; prints "connections=N" after each accept. SIGTERM stops it.
"""
import selectors
import signal
import socket
import sys

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(1024)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
accepted = 0
while True:
    for key, _ in sel.select():
        if key.fileobj is listener:
            conn, _ = listener.accept()
            sel.register(conn, selectors.EVENT_READ)
            accepted += 1
            print(f"connections={accepted}", flush=True)
        elif not key.fileobj.recv(65536):
            sel.unregister(key.fileobj)
            key.fileobj.close()
