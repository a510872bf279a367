"""Where live motion goes besides the event stream: VMC (OSC over UDP, what
VSeeFace, Warudo, VNyan and Unity's VMC receivers read) and a WebSocket JSON
stream for web avatars. Both send one message set per frame of a (55,)
motion row: the 52 ARKit weights and the head rotation vector.

Sockets bind and send to 127.0.0.1 unless given another host.
"""
from __future__ import annotations

import json
import threading

import numpy as np

from ..errors import FaceLangError
from ..face.arkit import ARKIT_52
from ..tokens.geometry import MOTION_DIM, N_EXPR
from .events import head_degrees

VMC_PORT = 39539      # VSeeFace / Warudo / VNyan default VMC receive port


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'HOST:PORT' or 'PORT' -> (host, port)."""
    host, _, port = str(text).rpartition(":")
    try:
        p = int(port)
    except ValueError:
        raise FaceLangError(f"expected HOST:PORT or PORT, got '{text}'") from None
    if not 0 < p < 65536:
        raise FaceLangError(f"port must be in 1..65535, got {p}")
    return (host or default_host), p


def _row(motion) -> np.ndarray:
    r = np.asarray(motion, np.float32)
    if r.shape != (MOTION_DIM,):
        raise FaceLangError(f"expected one motion row of {MOTION_DIM} values, got shape {r.shape}")
    return r


def head_quaternion_unity(rotvec) -> tuple[float, float, float, float]:
    """Rig head rotation vector -> Unity quaternion (x, y, z, w).

    The rig is right-handed: x toward the subject's left, y up, z out of the
    face. Unity is left-handed: x to the avatar's right, y up, z forward. The
    change of basis mirrors x, and a rotation's axis is a pseudovector, so
    (x, y, z) -> (x, -y, -z) on the axis; w is unchanged."""
    from ..l2m.export import quaternions

    x, y, z, w = (float(c) for c in quaternions(np.asarray(rotvec, np.float64).reshape(1, 3))[0])
    return x, -y, -z, w


class VMCSender:
    """Send motion rows as VMC: per frame one OSC bundle with 52
    `/VMC/Ext/Blend/Val (name, value)`, `/VMC/Ext/Bone/Pos ("Head", 0, 0, 0,
    qx, qy, qz, qw)`, then `/VMC/Ext/Blend/Apply`.

    names: "arkit" sends Apple's names (eyeBlinkLeft, the perfect-sync clip
    names most VRM receivers match case-insensitively); "pascal" capitalises
    the first letter (EyeBlinkLeft), for receivers that match exactly."""

    def __init__(self, host: str = "127.0.0.1", port: int = VMC_PORT, names: str = "arkit"):
        from pythonosc.udp_client import SimpleUDPClient

        if names not in ("arkit", "pascal"):
            raise FaceLangError(f"VMC names must be 'arkit' or 'pascal', got '{names}'")
        self.address = (host, int(port))
        self.names = list(ARKIT_52) if names == "arkit" else [n[0].upper() + n[1:] for n in ARKIT_52]
        self._client = SimpleUDPClient(host, int(port))
        self.sent = 0

    def send(self, motion, t: float = 0.0, index: int = 0) -> None:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        r = _row(motion)
        b = OscBundleBuilder(IMMEDIATELY)
        for name, v in zip(self.names, np.clip(r[:N_EXPR], 0.0, 1.0)):
            m = OscMessageBuilder("/VMC/Ext/Blend/Val")
            m.add_arg(name)
            m.add_arg(float(v))
            b.add_content(m.build())
        m = OscMessageBuilder("/VMC/Ext/Bone/Pos")
        m.add_arg("Head")
        for v in (0.0, 0.0, 0.0, *head_quaternion_unity(r[N_EXPR:N_EXPR + 3])):
            m.add_arg(float(v))
        b.add_content(m.build())
        b.add_content(OscMessageBuilder("/VMC/Ext/Blend/Apply").build())
        # The Head bone's local position is sent as zero: receivers that apply
        # bone positions should keep the avatar's own (VSeeFace and Warudo
        # take the rotation of /Bone/Pos for the head).
        self._client.send(b.build())
        self.sent += 1

    def close(self) -> None:
        self._client._sock.close()


def frame_message(motion, t: float, index: int) -> dict:
    """The WebSocket JSON of one frame: all 52 weights by name, head angles
    (degrees) and the head quaternion (Unity convention, x y z w)."""
    r = _row(motion)
    return {"type": "frame", "t": round(float(t), 4), "index": int(index),
            "blendshapes": {n: round(float(v), 4) for n, v in zip(ARKIT_52, np.clip(r[:N_EXPR], 0.0, 1.0))},
            "head": head_degrees(r), "head_quaternion": [round(q, 6) for q in head_quaternion_unity(r[N_EXPR:])]}


class _Client:
    """One WebSocket client with its own writer thread and a bounded queue:
    a client that stops reading loses its oldest messages, and never blocks
    the loop that produces them."""

    def __init__(self, conn, maxsize: int = 64):
        import queue

        self.conn = conn
        self.q = queue.Queue(maxsize=maxsize)
        self.dropped = 0
        self.thread = threading.Thread(target=self._write, name="pyfacelang-ws-client", daemon=True)
        self.thread.start()

    def offer(self, text: str | None) -> None:
        from .session import put_dropping_oldest

        self.dropped += put_dropping_oldest(self.q, text)

    def _write(self) -> None:
        while True:
            text = self.q.get()
            if text is None:
                return
            try:
                self.conn.send(text)
            except Exception:  # noqa: BLE001 - the connection is gone; the handler forgets it
                return

    def close(self) -> None:
        self.offer(None)


class WebSocketStream:
    """A WebSocket server (ws://HOST:PORT/) that sends every connected client
    one JSON text message per frame (`frame_message`) and any other event
    passed to `send_json` (captions). Runs in background threads; each client
    has its own bounded queue (a client that stops reading loses its oldest
    messages and never stalls the sender)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        from websockets.sync.server import serve

        self._clients: dict = {}
        self._lock = threading.Lock()
        try:
            self._server = serve(self._handler, host, int(port))
        except OSError as e:
            raise FaceLangError(f"cannot listen for WebSocket clients on {host}:{port} ({e.strerror})") from None
        self.address = self._server.socket.getsockname()[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="pyfacelang-ws", daemon=True)
        self._thread.start()
        self.sent = 0

    def _handler(self, conn) -> None:
        client = _Client(conn)
        with self._lock:
            self._clients[conn] = client
        try:
            for _ in conn:        # ignore what clients send; return when they close
                pass
        except Exception:  # noqa: BLE001 - a client that vanished
            pass
        finally:
            with self._lock:
                self._clients.pop(conn, None)
            client.close()

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def send_json(self, obj: dict) -> None:
        text = json.dumps(obj)
        with self._lock:
            clients = list(self._clients.values())
        for c in clients:
            c.offer(text)
        self.sent += 1

    def send(self, motion, t: float = 0.0, index: int = 0) -> None:
        self.send_json(frame_message(motion, t, index))

    def close(self) -> None:
        with self._lock:
            conns = list(self._clients)
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self._server.shutdown()
        self._thread.join(timeout=2.0)
