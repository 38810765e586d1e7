"""A TCP proxy the test controls, to take a service away from a worker mid-operation: ``cut()`` drops
every connection and refuses new ones until ``restore()`` (real sockets; the service itself runs on)."""

import socket
import threading


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        # accept() wakes up to look at ``stopped``: the socket is closed only once the thread has ended,
        # so that no later socket that reuses its descriptor number has its connections taken here.
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.open = True
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not self.open:
                client.close()  # refused: the service is "down"
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Drop every connection (a reset, as a network failure would) and refuse new ones."""
        self.open = False
        with self.lock:
            connections, self.connections = self.connections, []
        for sock in connections:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                # close() alone does not reset a socket another thread is blocked in recv() on (the
                # pipe's): the peer would wait for an answer that never comes. shutdown() wakes it.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.open = True

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(5)
        self.cut()
        self.listener.close()
