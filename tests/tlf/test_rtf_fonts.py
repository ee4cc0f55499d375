"""rtflite loads each font once (pipelines.tlf.rtf.load_fonts_once) and measures strings as before."""

from __future__ import annotations

import importlib

from PIL import ImageFont

from pipelines.tlf import rtf


def test_widths_are_rtflite_s_own_and_each_font_loads_once(monkeypatch):
    from rtflite import strwidth

    strwidth = importlib.reload(strwidth)  # rtflite as shipped: a font load per string
    texts = ["Table 14.2.1", "Ketamine 0.5 mg/kg", "−11.88 (−19.90, −3.86)", "", "CAPS-5 Cluster E (Arousal and reactivity)"]
    fonts = [("Times New Roman", 8), ("Times New Roman", 10), ("Arial", 8), ("Courier New", 9)]
    before = [strwidth.get_string_width(t, font=f, font_size=z) for t in texts for f, z in fonts]

    loads = []
    real = ImageFont.truetype
    monkeypatch.setattr(ImageFont, "truetype", lambda *a, **k: loads.append(a) or real(*a, **k))
    rtf.load_fonts_once()
    rtf.load_fonts_once()  # a second call changes nothing
    after = [strwidth.get_string_width(t, font=f, font_size=z) for t in texts for f, z in fonts]
    assert after == before
    assert len(loads) == len(fonts)  # once per font and size, not once per string
    importlib.reload(strwidth)  # leave rtflite as shipped for the other tests
