"""Live use: the tracking + captioning loop (`LiveSession`, `live`), avatar
streams (VMC over OSC/UDP, WebSocket JSON) and playback of generated motion."""
from __future__ import annotations

from .config import LiveConfig
from .events import KEY_SHAPES, CaptionEvent, FrameEvent, StatusEvent
from .session import LiveSession, LiveStats


def live(source=0, config: LiveConfig | None = None, *, callback=None, tokenizer=None, captioner=None, **settings):
    """The live loop as a Python API.

    Without `callback`: a generator of events,
        for event in pyfacelang.live("clip.mp4"): print(event.to_json())
    With `callback`: calls `callback(event)` for each event (returning False
    stops the loop) and returns the session's statistics.
    `settings` override LiveConfig fields (window_s=4, caption_every=2, ...)."""
    import dataclasses

    cfg = dataclasses.replace(config or LiveConfig(), **settings)
    session = LiveSession(source, cfg, tokenizer=tokenizer, captioner=captioner)
    if callback is None:
        return session.events()
    with session:
        for ev in session.events():
            if callback(ev) is False:
                break
    return session.stats.summary()


__all__ = ["LiveConfig", "LiveSession", "LiveStats", "FrameEvent", "CaptionEvent", "StatusEvent", "KEY_SHAPES",
           "live"]
