"""A stand-in for Docker's userland proxy (docker-proxy): listens on LISTEN_HOST:LISTEN_PORT and
relays each connection to TARGET_HOST:TARGET_PORT, both ways, until either side closes. Run in a
network namespace (`ip netns exec ... python port_forward.py 127.0.0.1:29092 10.77.0.1:9094`) it
publishes a container's port on the "host" as `ports: ["29092:9094"]` does. Prints `listening`
once bound."""

import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listen, target):
    host, port = listen.rsplit(":", 1)
    server = socket.create_server((host, int(port)))
    print("listening", flush=True)
    thost, tport = target.rsplit(":", 1)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((thost, int(tport)), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
