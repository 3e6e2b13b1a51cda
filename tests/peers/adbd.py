"""An ADB device emulator that speaks the real ADB wire protocol over loopback TCP.

Debian ships the ``adb`` client but no ``adbd``, so transport tests need a peer. This one is
written from the protocol documents (AOSP ``adb/protocol.txt`` and ``SYNC.TXT``) and checked
against Debian's real ``adb`` client in ``tests/test_adbd_emulator.py``:

- Messages: 24-byte little-endian header ``command, arg0, arg1, data_length, data_check, magic``
  with ``magic = command ^ 0xffffffff``; ``data_check`` is the byte sum of the payload (verified
  when the negotiated version is below ``0x01000001``, which skips checksums).
- Connection: host ``CNXN`` -> device ``AUTH TOKEN`` (20 random bytes) -> host ``AUTH SIGNATURE``
  (PKCS#1 v1.5 over the token treated as a SHA-1 digest, checked against the trusted keys in
  Android's RSA public key format) -> device ``CNXN`` with the banner, or a fresh token. After the
  host's keys are exhausted it sends ``AUTH RSAPUBLICKEY``: ``unknown_key="accept"`` simulates the
  user allowing USB debugging, ``"reject"`` denying it (connection closed), ``"ignore"`` nobody
  answering the prompt (silence).
- Streams: ``OPEN``/``OKAY``/``WRTE``/``CLSE`` with one outstanding ``WRTE`` per direction (the
  sender waits for ``OKAY``). Services: legacy ``shell:<cmd>`` and ``exec:<cmd>`` (``/bin/sh -c``,
  raw, stdout and stderr merged, no exit status: the legacy protocol has none), and ``sync:``
  with ``STAT``/``LIST``/``SEND``/``RECV``/``DATA``/``DONE``/``OKAY``/``FAIL``/``QUIT`` (v1 only).
  ``shell_v2`` and the ``*_v2`` sync features are not advertised, so clients use the legacy forms.

Sandbox: ``sync:`` maps device paths into ``root`` (``/data/local/tmp/x`` ->
``root/data/local/tmp/x``; a path already inside ``root`` is used as is). Shell commands run in
``root`` as working directory but see the host filesystem, so tests that mix shell and sync use
paths inside ``root`` (:meth:`AdbDeviceEmulator.device_path`). ``bin_dir`` is prepended to the
shell's ``PATH`` so tests can provide a fake ``getprop``.

Fault injection: ``drop_after_bytes`` drops the next connection that has received that many
payload bytes on ``sync:`` streams (one shot), e.g. in the middle of a push.
"""

from __future__ import annotations

import base64
import os
import posixpath
import signal
import socket
import stat as stat_mod
import struct
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE = (
    struct.unpack("<I", name)[0] for name in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE")
)
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
MAX_PAYLOAD = 256 * 1024
SYNC_DATA_MAX = 64 * 1024
HEADER = struct.Struct("<6I")
_NAMES = {A_CNXN: "CNXN", A_AUTH: "AUTH", A_OPEN: "OPEN", A_OKAY: "OKAY", A_CLSE: "CLSE", A_WRTE: "WRTE"}


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def decode_android_pubkey(text: str | bytes):
    """An ``adbkey.pub`` line (base64 of Android's RSAPublicKey struct + `` user@host``) as a key."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    blob = base64.b64decode(text.strip().strip("\0").split()[0])
    words, _n0inv = struct.unpack_from("<II", blob, 0)
    size = words * 4
    modulus = int.from_bytes(blob[8 : 8 + size], "little")
    (exponent,) = struct.unpack_from("<I", blob, 8 + 2 * size)
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


class _Closed(Exception):
    """The peer went away."""


class AdbDeviceEmulator:
    """A fake ``adbd`` listening on ``127.0.0.1:port``; ``start()``/``stop()``; thread per link."""

    def __init__(
        self,
        root: Path,
        *,
        trusted_keys: Iterable[str | bytes] = (),
        unknown_key: str = "reject",
        port: int = 0,
        bin_dir: Path | None = None,
        product: str = "blox_emu",
        model: str = "Blox_Emulator",
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        if unknown_key not in ("accept", "reject", "ignore"):
            raise ValueError("unknown_key must be 'accept', 'reject' or 'ignore'")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.unknown_key = unknown_key
        self.bin_dir = bin_dir
        self.max_payload = max_payload
        self.banner = (
            f"device::ro.product.name={product};ro.product.model={model};"
            f"ro.product.device={product};features=fixed_push_mkdir"
        ).encode()
        self._keys: list = []
        for key in trusted_keys:
            self.trust_key(key)
        self._requested_port = port
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self.drop_after_bytes: int | None = None
        self.drops = 0
        self.connections = 0

    # -- configuration ----------------------------------------------------------------------
    def trust_key(self, pubkey: str | bytes | Path) -> None:
        if isinstance(pubkey, Path):
            pubkey = pubkey.read_bytes()
        self._keys.append(decode_android_pubkey(pubkey))

    def device_path(self, relative: str) -> str:
        """A path that shell commands and ``sync:`` agree on (inside the sandbox root)."""
        return str(self.root / relative.lstrip("/"))

    def map_path(self, device_path: str) -> Path:
        norm = posixpath.normpath("/" + device_path.lstrip("/")) if device_path.startswith("/") else posixpath.normpath(device_path)
        if norm == str(self.root) or norm.startswith(str(self.root) + "/"):
            return Path(norm)
        path = (self.root / norm.lstrip("/")).resolve()
        if path != self.root and self.root not in path.parents:
            raise PermissionError(f"{device_path}: outside the device sandbox")
        return path

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return self._server.getsockname()[1]

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> AdbDeviceEmulator:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self._requested_port))
        server.listen(16)
        self._server = server  # listening before start() returns: ready, no sleep needed
        t = threading.Thread(target=self._accept_loop, name="adbd-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def drop_all(self) -> None:
        """Abruptly close every live connection (a cable pull / adbd restart)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def __enter__(self) -> AdbDeviceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        server = self._server
        while server is not None:
            try:
                sock, _ = server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # adbd disables Nagle too
            link = _Link(self, sock)
            with self._lock:
                self._links.add(link)
                self.connections += 1
            t = threading.Thread(target=link.serve, name="adbd-link", daemon=True)
            t.start()
            self._threads.append(t)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _take_drop(self, received: int) -> bool:
        with self._lock:
            if self.drop_after_bytes is not None and received >= self.drop_after_bytes:
                self.drop_after_bytes = None
                self.drops += 1
                return True
            return False


class _Link:
    """One transport (TCP connection): handshake, then dispatch packets to streams."""

    def __init__(self, emu: AdbDeviceEmulator, sock: socket.socket) -> None:
        self.emu = emu
        self.sock = sock
        self.send_lock = threading.Lock()
        self.version = A_VERSION_SKIP_CHECKSUM
        self.max_payload = emu.max_payload
        self.online = False
        self.token = b""
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.sync_bytes = 0
        self.closed = False

    # -- wire -------------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError as exc:
                raise _Closed from exc
            if not chunk:
                raise _Closed
            buf += chunk
        return bytes(buf)

    def recv_packet(self) -> tuple[int, int, int, bytes]:
        cmd, arg0, arg1, length, check, magic = HEADER.unpack(self._recv_exact(HEADER.size))
        if magic != cmd ^ 0xFFFFFFFF:
            raise _Closed(f"bad magic for command {cmd:#x}")
        if length > max(self.max_payload, MAX_PAYLOAD) * 4:
            raise _Closed(f"payload too large: {length}")
        data = self._recv_exact(length) if length else b""
        if self.version < A_VERSION_SKIP_CHECKSUM and _checksum(data) != check:
            raise _Closed("bad data checksum")
        return cmd, arg0, arg1, data

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = HEADER.pack(cmd, arg0, arg1, len(data), _checksum(data), cmd ^ 0xFFFFFFFF)
        with self.send_lock:
            try:
                self.sock.sendall(header + data)
            except OSError as exc:
                raise _Closed from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for stream in list(self.streams.values()):
            stream.abort()

    # -- main loop --------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            while not self.closed:
                cmd, arg0, arg1, data = self.recv_packet()
                if not self.online:
                    self._handshake(cmd, arg0, arg1, data)
                else:
                    self._dispatch(cmd, arg0, arg1, data)
        except _Closed:
            pass
        finally:
            self.close()
            self.emu._forget(self)

    def _handshake(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.version = min(arg0, A_VERSION_SKIP_CHECKSUM)
            self.max_payload = min(arg1 or MAX_PAYLOAD, self.emu.max_payload)
            self._send_token()
        elif cmd == A_AUTH and arg0 == AUTH_SIGNATURE:
            if self._verify(data):
                self._go_online()
            else:
                self._send_token()
        elif cmd == A_AUTH and arg0 == AUTH_RSAPUBLICKEY:
            policy = self.emu.unknown_key
            if policy == "accept":
                self.emu.trust_key(data)
                self._go_online()
            elif policy == "reject":
                raise _Closed("user denied USB debugging")
            # "ignore": the prompt is never answered; stay silent like a phone nobody looks at
        # anything else before authentication is ignored, as adbd does

    def _send_token(self) -> None:
        self.token = os.urandom(20)
        self.send(A_AUTH, AUTH_TOKEN, 0, self.token)

    def _verify(self, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        for key in list(self.emu._keys):
            try:
                key.verify(signature, self.token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
                return True
            except (InvalidSignature, ValueError):
                continue
        return False

    def _go_online(self) -> None:
        self.online = True
        self.send(A_CNXN, self.version, self.max_payload, self.emu.banner)

    def _dispatch(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        if cmd == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            local_id, self.next_id = self.next_id, self.next_id + 1
            stream = _Stream.for_service(self, service, local_id, arg0)
            if stream is None:
                self.send(A_CLSE, 0, arg0)
                return
            self.streams[local_id] = stream
            self.send(A_OKAY, local_id, arg0)
            stream.start()
            return
        stream = self.streams.get(arg1)
        if stream is None:
            return  # late packet for a closed stream
        if cmd == A_OKAY:
            stream.peer_ready.set()
        elif cmd == A_WRTE:
            if stream.is_sync:
                self.sync_bytes += len(data)
                if self.emu._take_drop(self.sync_bytes):
                    raise _Closed("fault injection: connection dropped")
            stream.feed(data)
            self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif cmd == A_CLSE:
            self.streams.pop(arg1, None)
            stream.peer_closed()
        elif cmd == A_CNXN:
            raise _Closed("host restarted the connection")


class _Stream:
    """One ADB stream; subclasses implement a service in their own thread."""

    is_sync = False

    def __init__(self, link: _Link, local_id: int, remote_id: int) -> None:
        self.link = link
        self.local_id = local_id
        self.remote_id = remote_id
        self.peer_ready = threading.Event()
        self.peer_ready.set()
        self.closed = threading.Event()
        self.clse_sent = False

    @staticmethod
    def for_service(link: _Link, service: str, local_id: int, remote_id: int) -> _Stream | None:
        if service.startswith("shell:") or service.startswith("exec:"):
            return _ShellStream(link, local_id, remote_id, service.split(":", 1)[1])
        if service == "sync:":
            return _SyncStream(link, local_id, remote_id)
        return None

    def start(self) -> None:
        threading.Thread(target=self._run_guarded, daemon=True, name=f"adbd-stream-{self.local_id}").start()

    def _run_guarded(self) -> None:
        try:
            self.run()
        except _Closed:
            pass
        finally:
            self.close_from_device()

    def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Send ``data`` as WRTE packets, waiting for the host's OKAY after each one."""
        view = memoryview(data)
        while view:
            while not self.peer_ready.wait(0.5):
                if self.closed.is_set() or self.link.closed:
                    raise _Closed
            if self.closed.is_set():
                raise _Closed
            self.peer_ready.clear()
            piece, view = view[: self.link.max_payload], view[self.link.max_payload :]
            self.link.send(A_WRTE, self.local_id, self.remote_id, bytes(piece))

    def close_from_device(self) -> None:
        if not self.clse_sent and not self.link.closed:
            self.clse_sent = True
            try:
                self.link.send(A_CLSE, self.local_id, self.remote_id)
            except _Closed:
                pass
        self.closed.set()

    def peer_closed(self) -> None:
        """The host sent CLSE: answer with CLSE (clients wait for it) and stop the service."""
        self.close_from_device()
        self.abort()

    def feed(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        self.closed.set()


class _ShellStream(_Stream):
    """Legacy ``shell:``/``exec:``: raw pipes, stderr merged into stdout, no exit status."""

    def __init__(self, link: _Link, local_id: int, remote_id: int, command: str) -> None:
        super().__init__(link, local_id, remote_id)
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        emu = self.link.emu
        env = dict(os.environ)
        if emu.bin_dir is not None:
            env["PATH"] = f"{emu.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        argv = ["/bin/sh", "-c", self.command] if self.command else ["/bin/sh"]
        self.proc = subprocess.Popen(
            argv, cwd=emu.root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, self.link.max_payload)
            if not chunk:
                break
            self.write(chunk)
        self.proc.wait()

    def feed(self, data: bytes) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def abort(self) -> None:
        super().abort()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _SyncStream(_Stream):
    """``sync:`` file transfer, protocol v1 (SYNC.TXT)."""

    is_sync = True

    def __init__(self, link: _Link, local_id: int, remote_id: int) -> None:
        super().__init__(link, local_id, remote_id)
        self._buf = bytearray()
        self._cv = threading.Condition()

    def feed(self, data: bytes) -> None:
        with self._cv:
            self._buf += data
            self._cv.notify_all()

    def abort(self) -> None:
        super().abort()
        with self._cv:
            self._cv.notify_all()

    def _read(self, n: int) -> bytes:
        with self._cv:
            while len(self._buf) < n:
                if self.closed.is_set():
                    raise _Closed
                self._cv.wait(0.5)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    def _request(self) -> tuple[bytes, int]:
        ident, length = struct.unpack("<4sI", self._read(8))
        return ident, length

    def _fail(self, message: str) -> None:
        msg = message.encode()
        self.write(struct.pack("<4sI", b"FAIL", len(msg)) + msg)

    def run(self) -> None:
        while True:
            ident, length = self._request()
            if ident == b"QUIT":
                return
            if length > 1024 and ident != b"DATA":
                self._fail(f"path too long: {length}")
                return
            arg = self._read(length).decode("utf-8", "surrogateescape")
            if ident == b"STAT":
                self._stat(arg)
            elif ident == b"LIST":
                self._list(arg)
            elif ident == b"SEND":
                self._send(arg)
            elif ident == b"RECV":
                self._recv(arg)
            else:
                self._fail(f"unknown sync command {ident!r}")
                return

    def _stat(self, device_path: str) -> None:
        try:
            st = os.stat(self.link.emu.map_path(device_path))
            reply = struct.pack("<4sIII", b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except OSError:
            reply = struct.pack("<4sIII", b"STAT", 0, 0, 0)
        self.write(reply)

    def _list(self, device_path: str) -> None:
        out = bytearray()
        try:
            directory = self.link.emu.map_path(device_path)
            for name in [".", ".."] + sorted(os.listdir(directory)):
                st = os.lstat(directory / name)
                raw = name.encode("utf-8", "surrogateescape")
                out += struct.pack("<4sIIII", b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw)) + raw
        except OSError:
            pass
        out += struct.pack("<4sIIII", b"DONE", 0, 0, 0, 0)
        self.write(bytes(out))

    def _send(self, spec: str) -> None:
        device_path, _, mode_text = spec.rpartition(",")
        if not device_path:
            device_path, mode_text = spec, "33188"
        try:
            mode = int(mode_text)
            path = self.link.emu.map_path(device_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "wb")
        except (OSError, ValueError) as exc:
            self._drain_data()
            self._fail(f"couldn't create file: {exc}")
            return
        ok = False
        try:
            while True:
                ident, length = self._request()
                if ident == b"DATA":
                    if length > SYNC_DATA_MAX:
                        raise _Closed(f"DATA chunk of {length} bytes exceeds {SYNC_DATA_MAX}")
                    fh.write(self._read(length))
                elif ident == b"DONE":
                    fh.close()
                    os.chmod(path, stat_mod.S_IMODE(mode) or 0o644)
                    os.utime(path, (length, length))
                    ok = True
                    break
                else:
                    raise _Closed(f"unexpected {ident!r} during SEND")
        finally:
            if not ok:  # adbd deletes a partially written file
                fh.close()
                path.unlink(missing_ok=True)
        self.write(struct.pack("<4sI", b"OKAY", 0))

    def _drain_data(self) -> None:
        while True:
            ident, length = self._request()
            if ident == b"DONE":
                return
            self._read(length)

    def _recv(self, device_path: str) -> None:
        try:
            fh = open(self.link.emu.map_path(device_path), "rb")
        except OSError as exc:
            self._fail(f"{device_path}: {exc.strerror or exc}")
            return
        with fh:
            out = bytearray()
            for chunk in iter(lambda: fh.read(SYNC_DATA_MAX), b""):
                out += struct.pack("<4sI", b"DATA", len(chunk)) + chunk
                if len(out) >= self.link.max_payload:
                    self.write(bytes(out))
                    out.clear()
        out += struct.pack("<4sI", b"DONE", 0)
        self.write(bytes(out))
