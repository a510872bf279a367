"""The live loop: capture -> landmarks + fit + token at frame rate -> a
rolling token window -> the captioner on its own thread.

Four threads joined by bounded queues:

- capture reads frames (paced at the source's frame rate for files, unless
  told not to); when processing falls behind it drops the oldest waiting
  frame, so latency never grows;
- landmarks runs MediaPipe on each frame. It is the costliest stage and
  releases the GIL while its graph runs, so on its own thread it overlaps
  the fit and token of the frame before (two cores: both are busy). It
  waits when processing is behind, so frames are dropped only by capture,
  before MediaPipe spends time on them;
- process runs the `FaceFitter` and the tokenizer's streaming `push` in frame
  order, emits a `FrameEvent` per frame (and a frame's MediaPipe error as a
  `StatusEvent`, in order) and, every `caption_every` seconds of source time,
  hands the last `window_s` of tokens to the captioner (a newer window
  replaces one still waiting: captions describe the present);
- caption runs the caption model and emits `CaptionEvent`s.

`LiveSession` owns them; `events()` yields what they emit, `stop()` ends
them. Counters and recent timings live in fixed-size buffers, so a session
that runs for hours keeps flat memory.
"""
from __future__ import annotations

import collections
import math
import queue
import threading
import time

import numpy as np

from ..errors import FaceLangError
from ..track.source import SourceError, open_source
from .config import LiveConfig
from .events import CaptionEvent, FrameEvent, StatusEvent

_END = object()        # end of a queue's stream
_RECENT = 2048         # timings kept per stage for percentiles
_MARKS = 1             # frames with landmarks waiting for the fit (see LiveSession.__init__)


def _get(q: queue.Queue, stop: threading.Event):
    """Blocking get that returns _END once the session stops."""
    while True:
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            if stop.is_set():
                return _END


def put_dropping_oldest(q: queue.Queue, item) -> int:
    """Put without waiting: when the queue is full, its oldest items make
    room. Returns how many were dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when the session stops."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def on_grid(times: np.ndarray, tokens: np.ndarray, fps: float) -> np.ndarray:
    """Tokens stamped with their frame times -> one token per 1/fps from the
    first to the last, each the latest token at that time. Dropped frames and
    short face dropouts leave gaps in `times`; the grid keeps the window's
    real duration, so the captioner never sees motion sped up."""
    n = max(1, int(round((times[-1] - times[0]) * fps)) + 1)
    grid = times[0] + np.arange(n) / fps
    idx = np.clip(np.searchsorted(times, grid + 1e-6, side="right") - 1, 0, len(tokens) - 1)
    return tokens[idx]


class LiveStats:
    """Counters and recent per-stage timings of a session (thread-safe enough:
    each field has one writer)."""

    STAGES = ("capture", "landmarks", "fit", "token")

    def __init__(self):
        self.read = self.processed = self.dropped = self.corrupt = 0
        self.faces = self.captions = self.captions_skipped = 0
        self.stages = {k: collections.deque(maxlen=_RECENT) for k in self.STAGES}
        self.latency = collections.deque(maxlen=_RECENT)          # frame read -> event, ms
        self.caption_latency = collections.deque(maxlen=_RECENT)  # window's last frame -> caption, ms
        self.queue_max = 0
        self.t_start = self.t_end = None

    def summary(self) -> dict:
        def pct(v, q):
            v = v.copy()           # one atomic copy: other threads append meanwhile
            return round(float(np.percentile(np.asarray(v), q)), 4) if len(v) else None

        wall = ((self.t_end or time.perf_counter()) - self.t_start) if self.t_start else 0.0
        return {"frames_read": self.read, "frames_processed": self.processed, "frames_dropped": self.dropped,
                "corrupt_frames": self.corrupt, "frames_with_face": self.faces, "captions": self.captions,
                "captions_skipped": self.captions_skipped, "wall_s": round(wall, 3),
                "fps": round(self.processed / wall, 2) if wall > 0 else None,
                "stage_ms": {k: {"median": pct(v, 50), "p95": pct(v, 95)} for k, v in self.stages.items()},
                "latency_ms": {"median": pct(self.latency, 50), "p95": pct(self.latency, 95)},
                "caption_latency_ms": {"median": pct(self.caption_latency, 50), "p95": pct(self.caption_latency, 95)},
                "frame_queue_max": self.queue_max}


class LiveSession:
    """Track, tokenize and caption a source live.

    source: webcam index, stream URL, video file, image or folder.
    tokenizer / captioner / reader: objects or folders (None: the shipped
    ones). The captioner must have been trained on this tokenizer (refused
    otherwise). The reader (a MotionReader) is used when `read_motion` is on.
    Usable in `with`; `events()` starts the threads on first use."""

    def __init__(self, source, config: LiveConfig | None = None, *, tokenizer=None, captioner=None, reader=None):
        from ..tokens.geometry import MOTION_NAMES
        from ..tokens.tokenizer import FaceTokenizer
        from ..track.reader import MotionReader

        self.cfg = config or LiveConfig()
        self.spec = source
        self.tokenizer = tokenizer if isinstance(tokenizer, FaceTokenizer) else FaceTokenizer.load(tokenizer)
        self.reader = None
        if self.cfg.read_motion:    # its own copy: push() keeps per-stream state
            self.reader = MotionReader(reader.net, reader.cfg, reader.meta) if isinstance(reader, MotionReader) \
                else MotionReader.load(reader)
        self.captioner = None
        if self.cfg.caption:
            from ..m2l.base import CaptionModel, load_caption_model

            if isinstance(captioner, CaptionModel):
                captioner.check_tokenizer(self.tokenizer.sha256)
                self.captioner = captioner
            else:
                self.captioner = load_caption_model(captioner, tokenizer_sha256=self.tokenizer.sha256)
        from ..face import load_model

        names = list(load_model("builtin").param_names)
        self._motion_idx = [names.index(n) for n in MOTION_NAMES]
        self._src = open_source(source)          # a missing file or camera fails here, before any thread
        self.live_source = self._src.live
        self.fps = float(self._src.fps) or 25.0
        self.realtime = (not self._src.live) if self.cfg.realtime is None else bool(self.cfg.realtime)
        self.drop = (self.realtime or self._src.live) if self.cfg.drop is None else bool(self.cfg.drop)
        self.stats = LiveStats()
        self._frames = queue.Queue(maxsize=self.cfg.queue_size)     # capture -> landmarks
        # landmarks -> process. One place and a blocking put: when the fit falls
        # behind, the landmarks thread waits, the frame queue fills and capture
        # drops frames before MediaPipe has spent time on them.
        self._marks = queue.Queue(maxsize=_MARKS)
        self._jobs = queue.Queue(maxsize=1)
        self._events = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._torch_threads: int | None = None
        self._stopped = False

    # ------------------------------------------------------------ control
    def start(self) -> "LiveSession":
        if self._threads:
            return self
        self.stats.t_start = time.perf_counter()
        if self.cfg.torch_threads is not None:
            import torch

            self._torch_threads = torch.get_num_threads()
            torch.set_num_threads(self.cfg.torch_threads)
        targets = [self._capture, self._landmarks, self._process]
        if self.captioner is not None:
            targets.append(self._caption)
        for f in targets:
            t = threading.Thread(target=self._guard(f), name=f"pyfacelang-{f.__name__.strip('_')}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self) -> None:
        """Signal the threads, wait for them, restore settings. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self.stats.t_end is None:
            self.stats.t_end = time.perf_counter()
        for q in (self._frames, self._marks, self._jobs, self._events):   # unblock producers
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        for t in self._threads:
            t.join(timeout=5.0)
        if not self._threads:      # never started: the source is still ours to close
            self._src.close()      # (once started, the capture thread closes it, never mid-read)
        if self._torch_threads is not None:
            import torch

            torch.set_num_threads(self._torch_threads)
            self._torch_threads = None

    close = stop

    def __enter__(self) -> "LiveSession":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def queue_lengths(self) -> dict:
        """Frames waiting for landmarks, frames with landmarks waiting for the
        fit, and events waiting for the consumer, now."""
        return {"frames": self._frames.qsize(), "marks": self._marks.qsize(), "events": self._events.qsize()}

    def events(self):
        """Yield FrameEvent / CaptionEvent / StatusEvent until the source ends,
        `max_frames` or `max_seconds` is reached, or the consumer stops."""
        self.start()
        deadline = None if self.cfg.max_seconds is None else self.stats.t_start + self.cfg.max_seconds
        try:
            while True:
                if deadline is not None and time.perf_counter() >= deadline:
                    self._stop.set()
                try:
                    ev = self._events.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set() and not any(t.is_alive() for t in self._threads):
                        break
                    continue
                if ev is _END:
                    break
                yield ev
        finally:
            self.stop()
        # after stop() has joined the threads: a thread that failed after the
        # one that ended the stream (its `finally` runs before `_guard` keeps
        # the error) is still reported
        if self._error is not None:
            raise self._error

    def _guard(self, f):
        def run():
            try:
                f()
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises
                self._error = self._error or e
                self._stop.set()
                try:
                    self._events.put_nowait(_END)
                except queue.Full:   # events() notices the stopped threads instead
                    pass
        return run

    def _emit(self, ev) -> None:
        _put(self._events, ev, self._stop)

    # ------------------------------------------------------------ threads
    def _capture(self) -> None:
        cfg, st = self.cfg, self.stats
        src, offset, t0 = self._src, 0.0, time.perf_counter()
        try:
            while not self._stop.is_set():
                it, last_time = iter(src), 0.0
                while not self._stop.is_set():
                    if cfg.max_frames is not None and st.read >= cfg.max_frames:
                        return
                    a = time.perf_counter()
                    frame = next(it, None)
                    if frame is None:
                        break
                    cap_ms = (time.perf_counter() - a) * 1e3
                    frame.time += offset
                    last_time = frame.time
                    if self.realtime:   # deliver it when a camera would have
                        wait = t0 + frame.time - time.perf_counter()
                        if wait > 0:
                            self._stop.wait(wait)
                    st.read += 1
                    item = (frame, time.perf_counter(), cap_ms)
                    if self.drop:
                        st.dropped += put_dropping_oldest(self._frames, item)
                    elif not _put(self._frames, item, self._stop):
                        return
                    st.queue_max = max(st.queue_max, self._frames.qsize())
                if self._src.live:
                    self._emit(StatusEvent(last_time, "source_error", f"'{self.spec}' stopped delivering frames "
                                           "(camera unplugged or stream ended)"))
                    return
                if not cfg.loop or self._stop.is_set():
                    return
                src.close()    # loop: read the file again, times continue
                offset = last_time + 1.0 / self.fps
                src = self._src = open_source(self.spec)
        except SourceError as e:
            self._emit(StatusEvent(float("nan"), "source_error", str(e)))
        finally:
            self._src.close()
            _put(self._frames, _END, self._stop)

    def _landmarks(self) -> None:
        from ..track.landmarks import LandmarkDetector

        try:
            with LandmarkDetector(static_image_mode=False) as det:
                while True:
                    item = _get(self._frames, self._stop)
                    if item is _END or self._stop.is_set():
                        break
                    frame, t_read, cap_ms = item
                    a = time.perf_counter()
                    try:
                        lmk, err = det.detect(frame.image), None
                    except FaceLangError as e:     # reported by process, in frame order
                        lmk, err = None, e
                    item = (frame, t_read, cap_ms, (time.perf_counter() - a) * 1e3, lmk, err)
                    if not _put(self._marks, item, self._stop):
                        return
        finally:
            _put(self._marks, _END, self._stop)

    def _process(self) -> None:
        from ..tokens.geometry import head_relative
        from ..track.fitter import FaceFitter

        st, tok, reader = self.stats, self.tokenizer, self.reader
        tok.reset()
        if reader is not None:
            reader.reset()
        win = collections.deque(maxlen=int(math.ceil(self.cfg.window_s * self.fps)) + 1)   # (time, token)
        next_caption, last_caption_end, missing, face = None, -math.inf, 0, False
        lost_after = None
        try:
            with FaceFitter(None) as fitter:
                lost_after = fitter.cfg.lost_after
                while True:
                    item = _get(self._marks, self._stop)
                    if item is _END or self._stop.is_set():
                        break
                    frame, t_read, cap_ms, lmk_ms, lmk, err = item
                    if err is not None:
                        st.corrupt += 1
                        self._emit(StatusEvent(frame.time, "corrupt_frame", f"frame {frame.index} skipped: {err}"))
                        continue
                    b = time.perf_counter()
                    res = fitter.process(lmk, frame.time)
                    c = time.perf_counter()
                    motion = token = None
                    if res.valid:
                        motion = head_relative(res.params[self._motion_idx][None], fitter.rest_rotation)[0]
                        if reader is not None:
                            motion = reader.push(motion)
                        token = tok.push(motion, True)
                        win.append((frame.time, token))
                        st.faces += 1
                        missing = 0
                        if not face:
                            face = True
                            self._emit(StatusEvent(frame.time, "face_found", f"face found at frame {frame.index}"))
                    else:
                        missing += 1
                        if face and missing >= lost_after:
                            face = False
                            win.clear()    # a window never spans two faces
                            tok.reset()
                            if reader is not None:
                                reader.reset()
                            next_caption = None
                            self._emit(StatusEvent(frame.time, "face_lost",
                                                   f"no face for {missing} frames (since frame "
                                                   f"{frame.index - missing + 1})"))
                    d = time.perf_counter()
                    st.processed += 1
                    stages = dict(zip(LiveStats.STAGES, (cap_ms, lmk_ms, (c - b) * 1e3, (d - c) * 1e3)))
                    for k, v in stages.items():
                        st.stages[k].append(v)
                    st.latency.append((d - t_read) * 1e3)
                    self._emit(FrameEvent(frame.index, frame.time, bool(res.valid), token, motion, stages,
                                          (d - t_read) * 1e3, res, frame.image if self.cfg.keep_image else None))
                    if self.captioner is not None and win:
                        if next_caption is None:
                            next_caption = win[0][0] + self.cfg.caption_every
                        if frame.time >= next_caption:
                            self._submit(win, d)
                            last_caption_end = frame.time
                            next_caption = frame.time + self.cfg.caption_every
                # the tail: caption what came after the last caption (a short clip: its one window)
                if self.captioner is not None and win and win[-1][0] - last_caption_end >= 0.5 \
                        and not self._stop.is_set():
                    self._submit(win, time.perf_counter(), wait=True)
        finally:
            _put(self._jobs, _END, self._stop)
            if self.captioner is None:
                self._emit(StatusEvent(float("nan"), "end", self._end_message()))
                _put(self._events, _END, self._stop)

    def _submit(self, win, t_ready: float, wait: bool = False) -> None:
        t = np.array([x[0] for x in win])
        k = int(np.searchsorted(t, t[-1] - self.cfg.window_s, side="right"))    # the last window_s seconds
        job = (t[k:], np.array([x[1] for x in list(win)[k:]], np.int64), t_ready)
        if wait:
            _put(self._jobs, job, self._stop)
            return
        try:
            self._jobs.put_nowait(job)
        except queue.Full:     # the captioner is behind: the newer window replaces the waiting one
            try:
                self._jobs.get_nowait()
                self.stats.captions_skipped += 1
            except queue.Empty:
                pass
            self._jobs.put_nowait(job)

    def _caption(self) -> None:
        st, model = self.stats, self.captioner
        try:
            while True:
                job = _get(self._jobs, self._stop)
                if job is _END or self._stop.is_set():
                    break
                times, toks, t_ready = job
                start, end = float(times[0]), float(times[-1])
                text = model.caption_batch([on_grid(times, toks, model.fps)])[0]
                lat = (time.perf_counter() - t_ready) * 1e3
                st.captions += 1
                st.caption_latency.append(lat)
                self._emit(CaptionEvent(start, end, text, lat, len(toks)))
        finally:
            self._emit(StatusEvent(float("nan"), "end", self._end_message()))
            _put(self._events, _END, self._stop)

    def _end_message(self) -> str:
        s = self.stats
        return (f"{s.processed} frames processed ({s.faces} with a face), {s.dropped} dropped, "
                f"{s.captions} captions")
