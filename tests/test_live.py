"""The live loop (`LiveSession`, `pyfacelang.live`), avatar streams (VMC
received by a real OSC server on loopback, WebSocket), `live`/`demo`/`bench
live` commands. Clips are rendered from the rig (MediaPipe finds its face)."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import pyfacelang
from pyfacelang.errors import FaceLangError
from pyfacelang.face.arkit import ARKIT_52
from pyfacelang.stream import LiveConfig, LiveSession
from pyfacelang.stream.avatar import play_motion
from pyfacelang.stream.bench import rss_mb
from pyfacelang.stream.sinks import VMCSender, WebSocketStream, head_quaternion_unity, parse_host_port
from pyfacelang.track.source import SourceError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from pyfacelang.stream.demo import make_sample

    path = tmp_path_factory.mktemp("live") / "sample.mp4"
    info = make_sample(path, size=256, seconds=3.0)
    return str(path), info


def _run(source, **kw):
    cfg = LiveConfig(**{"realtime": False, "drop": False, **kw})
    with LiveSession(source, cfg) as s:
        evs = list(s.events())
    return evs, s.stats.summary()


def test_live_session_tokens_and_captions(clip, shipped_tokenizer):
    path, info = clip
    evs, st = _run(path, caption_every=1.0, window_s=2.0)
    frames = [e for e in evs if e.type == "frame"]
    caps = [e for e in evs if e.type == "caption"]
    assert len(frames) == info["frames"] == st["frames_processed"]
    assert [f.index for f in frames] == list(range(info["frames"]))      # nothing dropped when drop is off
    assert st["frames_dropped"] == 0
    valid = [f for f in frames if f.valid]
    assert len(valid) >= 0.9 * len(frames)
    assert all(isinstance(f.token, int) and 0 <= f.token < shipped_tokenizer.codebook_size for f in valid)
    assert len({f.token for f in valid}) > 3                              # the face moves: tokens change
    assert len(caps) >= 2 and all(c.caption.strip() for c in caps)
    assert all(c.end - c.start <= 2.0 + 1e-6 for c in caps)
    assert evs[-1].type == "status" and evs[-1].kind == "end"
    assert any(e.type == "status" and e.kind == "face_found" for e in evs)
    j = valid[10].to_json()
    assert set(j) >= {"t", "index", "token", "arkit", "head", "stages_ms"}
    assert set(j["stages_ms"]) == {"capture", "landmarks", "fit", "token"}
    json.dumps([e.to_json() for e in evs])                                # every event serialises


def test_live_tokens_match_offline_tokenizer(clip):
    """Streaming push gives the same tokens as encoding the streamed motion at once."""
    from pyfacelang.tokens.tokenizer import FaceTokenizer

    evs, _ = _run(clip[0], caption=False)
    frames = [e for e in evs if e.type == "frame" and e.valid]
    tok = FaceTokenizer.load()
    assert np.array_equal(tok.encode(np.stack([f.motion for f in frames])), [f.token for f in frames])


def test_short_clip_is_one_caption(clip):
    evs, _ = _run(clip[0], caption_every=60.0, window_s=60.0)
    caps = [e for e in evs if e.type == "caption"]
    assert len(caps) == 1 and caps[0].start == 0.0


def test_python_api_generator_and_callback(clip):
    n = 0
    for ev in pyfacelang.live(clip[0], realtime=False, caption=False, max_frames=12):
        n += ev.type == "frame"
    assert n == 12
    seen = []
    stats = pyfacelang.live(clip[0], realtime=False, caption=False, callback=lambda e: seen.append(e) or len(seen) < 5)
    assert len(seen) == 5 and stats["frames_processed"] >= 1


def test_soak_looped_clip_flat_queues_and_memory(clip):
    """A shorter version of the 10-minute run: a looped clip in real time.
    Queue lengths stay within their bounds and memory stays flat."""
    cfg = LiveConfig(loop=True, max_seconds=9.0, caption_every=1.0, window_s=2.0)
    rss, qmax, mmax = [], 0, 0
    with LiveSession(clip[0], cfg) as s:
        t_last = time.perf_counter()
        for _ in s.events():
            q = s.queue_lengths()
            qmax, mmax = max(qmax, q["frames"]), max(mmax, q["marks"])
            if time.perf_counter() - t_last >= 1.0:
                t_last = time.perf_counter()
                rss.append(rss_mb())
        st = s.stats.summary()
    assert st["frames_read"] > 3 * 75                      # the 3-second clip looped
    assert qmax <= cfg.queue_size and st["frame_queue_max"] <= cfg.queue_size and mmax <= 1
    assert st["captions"] >= 5
    if np.isfinite(rss).all() and len(rss) >= 6:
        assert rss[-1] - rss[2] < 40.0, rss               # MiB, after warm-up


def test_missing_and_corrupt_sources(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        LiveSession(str(tmp_path / "nope.mp4"))
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(SourceError, match="corrupt.mp4"):
        LiveSession(str(bad))


def test_no_face_frames(tmp_path):
    from pyfacelang.render.video import VideoWriter

    path = str(tmp_path / "blank.mp4")
    with VideoWriter(path, fps=25) as vw:
        for i in range(20):
            vw.write(np.full((128, 128, 3), 90 + i, np.uint8))
    evs, st = _run(path)
    frames = [e for e in evs if e.type == "frame"]
    assert len(frames) == 20 and not any(f.valid for f in frames)
    assert all(f.token is None and f.to_json()["token"] is None for f in frames)
    assert st["captions"] == 0 and evs[-1].kind == "end"


def test_config_rejects_nonsense():
    with pytest.raises(FaceLangError):
        LiveConfig(window_s=0)
    with pytest.raises(FaceLangError):
        LiveConfig(queue_size=0)
    with pytest.raises(FaceLangError):
        parse_host_port("localhost:99999")
    assert parse_host_port("9000") == ("127.0.0.1", 9000)


# ------------------------------------------------------------------ avatar streams
def _motion(T=15, seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((T, 55), np.float32)
    m[:, :52] = rng.uniform(0, 1, (T, 52))
    m[:, 52:] = rng.uniform(-0.3, 0.3, (T, 3))
    return m


def test_vmc_stream_received_on_loopback():
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    got = {"val": [], "bone": [], "apply": []}
    d = Dispatcher()
    d.map("/VMC/Ext/Blend/Val", lambda addr, name, v: got["val"].append((name, v)))
    d.map("/VMC/Ext/Bone/Pos", lambda addr, *a: got["bone"].append(a))
    d.map("/VMC/Ext/Blend/Apply", lambda addr, *a: got["apply"].append(time.perf_counter()))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        m = _motion(15)
        sender = VMCSender("127.0.0.1", server.server_address[1])
        r = play_motion(m, 30.0, [sender])
        sender.close()
        deadline = time.time() + 3
        while len(got["apply"]) < 15 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        server.shutdown()
    assert r["frames_sent"] == 15 and len(got["apply"]) == 15 and len(got["bone"]) == 15
    assert [n for n, _ in got["val"][:52]] == list(ARKIT_52)
    vals = np.array([v for _, v in got["val"]], np.float32).reshape(15, 52)
    np.testing.assert_allclose(vals, m[:, :52], atol=1e-6)
    for f in range(15):
        name, px, py, pz, qx, qy, qz, qw = got["bone"][f]
        assert name == "Head" and (px, py, pz) == (0.0, 0.0, 0.0)
        np.testing.assert_allclose([qx, qy, qz, qw], head_quaternion_unity(m[f, 52:]), atol=1e-6)
    dt = np.diff(got["apply"])
    assert 0.6 / 30 < np.median(dt) < 1.6 / 30          # sent at the model's frame rate


def test_head_quaternion_convention():
    # yaw toward the subject's left (+y in the rig) is a negative rotation about Unity's +y
    q = head_quaternion_unity([0.0, 0.4, 0.0])
    assert q[1] < 0 and abs(q[0]) < 1e-12 and abs(q[2]) < 1e-12
    np.testing.assert_allclose(np.linalg.norm(q), 1.0)
    q = head_quaternion_unity([0.3, 0.0, 0.0])           # pitch (chin down) keeps its axis
    assert q[0] > 0
    assert head_quaternion_unity([0, 0, 0]) == (0.0, 0.0, 0.0, 1.0)


def test_websocket_stream():
    from websockets.sync.client import connect

    ws = WebSocketStream(0)
    try:
        with connect(f"ws://127.0.0.1:{ws.address[1]}/") as c:
            deadline = time.time() + 3
            while ws.clients == 0 and time.time() < deadline:
                time.sleep(0.01)
            m = _motion(5)
            play_motion(m, 50.0, [ws])
            msgs = [json.loads(c.recv(timeout=3)) for _ in range(5)]
    finally:
        ws.close()
    assert [x["index"] for x in msgs] == list(range(5))
    assert list(msgs[0]["blendshapes"]) == list(ARKIT_52)
    np.testing.assert_allclose([msgs[2]["blendshapes"][n] for n in ARKIT_52], m[2, :52], atol=1e-4)
    assert set(msgs[0]["head"]) == {"pitch", "yaw", "roll"} and len(msgs[0]["head_quaternion"]) == 4


def test_play_motion_rejects_bad_motion():
    with pytest.raises(FaceLangError, match="55"):
        play_motion(np.zeros((4, 10)), 25.0, [])
    with pytest.raises(FaceLangError):
        play_motion(np.zeros((4, 55)), 0.0, [])


# ------------------------------------------------------------------ commands
def test_live_command(clip, tmp_path, capsys):
    from pyfacelang.cli import main

    jl, prev = tmp_path / "ev.jsonl", tmp_path / "view.mp4"
    assert main(["live", "--source", clip[0], "--no-realtime", "--jsonl", str(jl), "--preview", str(prev),
                 "--caption-every", "1s", "--window", "2s"]) == 0
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert sum(x["type"] == "frame" for x in lines) == clip[1]["frames"]
    assert any(x["type"] == "caption" for x in lines) and "live done" in out
    import cv2

    cap = cv2.VideoCapture(str(prev))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == clip[1]["frames"]
    cap.release()
    assert main(["live", "--source", clip[0], "--preview", str(tmp_path / "v.avi")]) == 1
    assert main(["live", "--source", str(tmp_path / "missing.mp4")]) == 1
    assert "not found" in capsys.readouterr().err


def test_bench_live_figures(clip):
    from pyfacelang.stream.bench import bench_live, format_table

    r = bench_live(clip[0], max_frames=40)
    assert r["frames"] == 40 and r["dropped_frames"] == 0 and r["fps"] > 0
    assert set(r["stage_ms_median"]) == {"capture", "landmarks", "fit", "token"}
    assert r["baseline_landmarks_only_fps"] > 0 and "fps" in format_table(r)


def test_avatar_command_streams_vmc(capsys):
    """`pyfacelang avatar TEXT --vmc` with the shipped motion model, received by a real OSC server."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    from pyfacelang.cli import main

    applies, smiles = [], []
    d = Dispatcher()
    d.map("/VMC/Ext/Blend/Apply", lambda addr, *a: applies.append(time.perf_counter()))
    d.map("/VMC/Ext/Blend/Val", lambda addr, n, v: smiles.append(v) if n == "mouthSmileLeft" else None)
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert main(["avatar", "a broad smile", "--seconds", "1", "--vmc", f"127.0.0.1:{port}"]) == 0
        time.sleep(0.2)
    finally:
        server.shutdown()
    assert "sent 25 frames" in capsys.readouterr().out
    assert len(applies) == 25 and len(smiles) == 25
    assert 0.6 / 25 < np.median(np.diff(applies)) < 1.6 / 25


def test_demo_command(tmp_path, capsys):
    from pyfacelang.cli import main

    out = tmp_path / "demo_out"
    assert main(["demo", "-o", str(out), "--seconds", "2"]) == 0
    text = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["live"]["with_face"] >= 0.9 * s["live"]["frames"] and s["live"]["captions"]
    assert s["avatar"]["frames"] == 50
    assert [p["start"] for p in s["avatar"]["parts"]] == [0.0, 1.0]      # the demo prompt's smile, then surprise
    assert "in parts:         0.0 s 'a slow smile'; 1.0 s 'a surprised jaw drop'" in text
    for f in ("input.mp4", "demo.mp4", "events.jsonl", "avatar.mp4", "avatar.glb", "avatar.csv"):
        assert (out / f).stat().st_size > 0, f
    assert "caption" in text and "demo done" in text


def test_face_leaving_and_returning(clip, tmp_path):
    """Blank frames in the middle: the loop reports the face lost, keeps going,
    and reports it found again; no caption window spans the gap."""
    import cv2

    from pyfacelang.render.video import VideoWriter

    cap = cv2.VideoCapture(clip[0])
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    path = str(tmp_path / "gap.mp4")
    with VideoWriter(path, fps=25) as vw:
        for f in frames[:30] + [np.full_like(frames[0], 40)] * 20 + frames[30:]:
            vw.write(f)
    evs, st = _run(path, caption_every=0.8, window_s=1.6)
    kinds = [(e.kind, round(e.time, 2)) for e in evs if e.type == "status"]
    assert [k for k, _ in kinds] == ["face_found", "face_lost", "face_found", "end"], kinds
    lost_t, back_t = kinds[1][1], kinds[2][1]
    assert 1.2 <= lost_t <= 2.0 and 1.9 <= back_t <= 2.2
    for c in (e for e in evs if e.type == "caption"):
        assert c.end <= lost_t or c.start >= back_t - 1e-6, (c.start, c.end)
    assert st["frames_processed"] == len(frames) + 20


def test_live_mirrors_to_vmc(clip):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    from pyfacelang.cli import main

    applies = []
    d = Dispatcher()
    d.map("/VMC/Ext/Blend/Apply", lambda addr, *a: applies.append(1))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert main(["live", "--source", clip[0], "--no-realtime", "--no-caption", "--max-frames", "30",
                     "--vmc", f"127.0.0.1:{server.server_address[1]}"]) == 0
        time.sleep(0.3)
    finally:
        server.shutdown()
    assert len(applies) == 30          # one VMC frame per tracked frame


def test_stopping_early_is_prompt(clip):
    """Breaking out of the loop or hitting max_seconds ends every thread quickly."""
    t0 = time.perf_counter()
    with LiveSession(clip[0], LiveConfig(caption_every=0.5, window_s=1.0)) as s:   # paced: ~3 s of video
        for ev in s.events():
            if ev.type == "caption":
                break
    assert time.perf_counter() - t0 < 6.0
    assert not any(t.is_alive() for t in s._threads)
    t0 = time.perf_counter()
    evs = list(pyfacelang.live(clip[0], loop=True, max_seconds=1.5))
    assert time.perf_counter() - t0 < 5.0 and evs


def test_caption_window_keeps_real_time():
    from pyfacelang.stream.session import on_grid

    times = np.array([0.0, 0.04, 0.08, 0.40, 0.44])          # frames 3-9 dropped
    toks = np.array([1, 2, 3, 4, 5])
    g = on_grid(times, toks, 25.0)
    assert len(g) == 12 and list(g[:3]) == [1, 2, 3] and list(g[3:10]) == [3] * 7 and list(g[10:]) == [4, 5]


@pytest.mark.parametrize("width", [304, 464, 624])
@pytest.mark.parametrize("text", [
    "The person starts calm and breaks into a very composed look, and then tucks the chin.",
    "The face looks extremely attentive, and then looks away, and at the same time briefly raises the left "
    "eyebrow, and finally momentarily looks right with the eyes.",
])
def test_caption_panel_shows_every_word(width, text):
    """The demo's 320 px view cut a four-line caption to three lines; a real
    caption must be laid out whole (smaller font if needed), in the panel."""
    import cv2

    from pyfacelang.stream.overlay import CAPTION_LINES, fit_caption

    height = 8 + 22 * CAPTION_LINES
    lines, scale, pitch = fit_caption(text, width, height)
    assert " ".join(lines).split() == text.split()
    assert pitch * len(lines) <= height
    assert all(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width for line in lines)


def test_caption_panel_marks_a_cut():
    from pyfacelang.stream.overlay import fit_caption

    text = " ".join(f"word{i}" for i in range(200))
    lines, _, _ = fit_caption(text, 304, 74)
    assert lines[-1].endswith("...") and len(" ".join(lines).split()) < 200
    assert fit_caption("", 304, 74)[0] == []
    # a word wider than the panel is cut with a mark, not left to overflow
    import cv2
    lines, scale, _ = fit_caption("A " + "W" * 60 + " face", 304, 74)
    assert any(line.endswith("...") for line in lines)
    assert all(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= 304 for line in lines)
    assert fit_caption("The person smiles.", 304, 10)[0] == []          # no room for a line: none drawn


def test_live_view_frame_size_is_fixed(clip):
    """Every view frame has the same size whatever the caption (a video writer needs that)."""
    from pyfacelang.stream.events import CaptionEvent
    from pyfacelang.stream.overlay import LiveView

    path, _ = clip
    cfg = LiveConfig(realtime=False, drop=False, keep_image=True)
    view = LiveView(width=320)
    shapes = set()
    with LiveSession(path, cfg) as s:
        for k, ev in enumerate(s.events()):
            if ev.type == "frame":
                if k == 20:
                    view.add_caption(CaptionEvent(start=0.0, end=4.0, caption="word " * 80, latency_ms=1.0, tokens=100))
                shapes.add(view.frame(ev).shape)
            if k > 40:
                break
    assert len(shapes) == 1


def _fail_detect_call(monkeypatch, n: int, error: Exception) -> None:
    """MediaPipe's detect raises `error` on its n-th call (1-based), else runs."""
    from pyfacelang.track.landmarks import LandmarkDetector

    real, calls = LandmarkDetector.detect, [0]

    def detect(self, image):
        calls[0] += 1
        if calls[0] == n:
            raise error
        return real(self, image)

    monkeypatch.setattr(LandmarkDetector, "detect", detect)


def test_corrupt_frame_reported_in_frame_order(clip, monkeypatch):
    """MediaPipe refusing one frame (it runs on its own thread) is reported
    between the frame events before and after it, and the loop goes on."""
    _fail_detect_call(monkeypatch, 8, FaceLangError("expected an (H, W, 3) uint8 BGR frame, got (4, 4)"))
    evs, st = _run(clip[0], caption=False, max_frames=20)
    seq = [(e.type, e.index) if e.type == "frame" else (e.kind, None) for e in evs]
    k = seq.index(("corrupt_frame", None))
    assert seq[k - 1] == ("frame", 6) and seq[k + 1] == ("frame", 8), seq
    assert "frame 7 skipped" in evs[k].message
    assert st["corrupt_frames"] == 1 and st["frames_processed"] == 19


def test_slow_fit_drops_frames_never_queues_them(clip, monkeypatch):
    """When the fit falls behind with dropping on, capture drops frames (the
    landmarks thread waits), no queue grows past its bound, and every frame
    read is accounted for."""
    from pyfacelang.track.fitter import FaceFitter

    real = FaceFitter.process

    def slow(self, *a, **kw):
        time.sleep(0.03)
        return real(self, *a, **kw)

    monkeypatch.setattr(FaceFitter, "process", slow)
    cfg = LiveConfig(realtime=False, drop=True, caption=False)
    qmax = 0
    with LiveSession(clip[0], cfg) as s:
        for _ in s.events():
            q = s.queue_lengths()
            qmax = max(qmax, q["frames"])
            assert q["marks"] <= 1
        st = s.stats
    assert st.dropped > 0 and qmax <= cfg.queue_size
    assert st.read == st.processed + st.dropped + st.corrupt == clip[1]["frames"]


def test_a_failing_stage_ends_the_loop_with_its_error(clip, monkeypatch):
    """An unexpected error in the landmarks thread ends every thread and
    reaches the consumer, even though the stream's end marker went first."""
    _fail_detect_call(monkeypatch, 5, RuntimeError("landmark model crashed"))
    with LiveSession(clip[0], LiveConfig(realtime=False, drop=False)) as s:
        with pytest.raises(RuntimeError, match="landmark model crashed"):
            for _ in s.events():
                pass
        assert not any(t.is_alive() for t in s._threads)
