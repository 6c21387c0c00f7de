# A TCP listener that the client may not reach: logs every connection it accepts (argv[3]).
# Usage: outsider.py PORT ADDRESS LOG
import socket
import sys

port, address, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
log = open(path, "a", buffering=1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((address, port))
s.listen()
while True:
    conn, peer = s.accept()
    log.write(f"connection from {peer[0]}\n")
    conn.close()
