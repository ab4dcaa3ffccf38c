"""Engraving with verovio: page PNGs, notehead boxes and onsets, staff systems, MIDI.

verovio renders MusicXML to SVG; every ``<g class="note">`` carries a
notehead bounding box, the timemap gives each note's onset and the MIDI
export the performed note events. Tie continuations (the end of a ``<tie>``
or a note with ``@tie`` ``m``/``t`` in the MEI) start no sound. Repeats are
not expanded (``expandNever``): the score is played once, as written, so each
notehead has at most one onset.
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET

import cairosvg
import numpy as np
import verovio
from PIL import Image

from audio_sheet_retrieval.build.engraving import (
    PAGE_WIDTH_PX,
    EngravedScore,
    Notehead,
    System,
)
from audio_sheet_retrieval.build.midi import read_note_events

VEROVIO_OPTIONS = {
    "pageWidth": 2100, "pageHeight": 2970, "scale": 100, "header": "none", "footer": "none",
    "breaks": "auto", "svgBoundingBoxes": True, "expandNever": True, "adjustPageHeight": False,
}
_SVG = "{http://www.w3.org/2000/svg}"
_XLINK = "{http://www.w3.org/1999/xlink}href"
_TRANSLATE = re.compile(r"translate\(\s*([-\d.]+)[,\s]+([-\d.]+)\s*\)")
_LINE = re.compile(r"M\s*([-\d.]+)\s+([-\d.]+)\s*L\s*([-\d.]+)\s+([-\d.]+)")
_HOLLOW_GLYPHS = ("E0A2", "E0A3", "E0A0", "E0A1")  # whole, half, breve heads


def _classes(el: ET.Element) -> list[str]:
    return el.get("class", "").split()


def _bbox_rect(el: ET.Element, kind: str, dx: float, dy: float):
    """(x, y, w, h) of the element's own ``<g class="<kind> bounding-box">`` rect."""
    for child in el:
        if child.tag == _SVG + "g" and _classes(child) == [kind, "bounding-box"]:
            rect = child.find(_SVG + "rect")
            if rect is not None:
                return (float(rect.get("x")) + dx, float(rect.get("y")) + dy,
                        float(rect.get("width")), float(rect.get("height")))
    return None


def _parse_page(svg: str, page: int):
    """Notes (id, box, head-centre y, filled, staff number) and systems of one SVG page.

    Coordinates are returned in page pixels.
    """
    root = ET.fromstring(svg)
    inner = root.find(_SVG + "svg")
    vb_width = float((inner if inner is not None else root).get("viewBox").split()[2])
    scale = PAGE_WIDTH_PX / vb_width
    notes, systems = [], []

    def walk(el, dx, dy, staff_no, system):
        m = _TRANSLATE.search(el.get("transform", "")) if el.tag == _SVG + "g" else None
        if m:
            dx, dy = dx + float(m.group(1)), dy + float(m.group(2))
        cls = _classes(el)
        if "system" in cls and "bounding-box" not in cls:
            system = {"staves": {}, "box": None}
            systems.append(system)
        if "staff" in cls and "bounding-box" not in cls and system is not None:
            staff_no = sum(1 for _ in system.get("_measure_staves", [])) + 1
            rect = _bbox_rect(el, "staff", dx, dy)
            lines = [float(mm.group(2)) + dy for p in el.findall(_SVG + "path")
                     if (mm := _LINE.match(p.get("d", ""))) and mm.group(2) == mm.group(4)]
            system.setdefault("_measure_staves", []).append(1)
            if rect is not None:
                x, y, w, h = rect
                box = system["box"]
                system["box"] = (x, y, x + w, y + h) if box is None else (
                    min(box[0], x), min(box[1], y), max(box[2], x + w), max(box[3], y + h))
            if lines and staff_no not in system["staves"]:
                system["staves"][staff_no] = sorted(lines)
        if "note" in cls and "bounding-box" not in cls:
            rect = _bbox_rect(el, "note", dx, dy)
            head = next((g for g in el if _classes(g) == ["notehead"]), None)
            use = head.find(_SVG + "use") if head is not None else None
            if rect is not None and use is not None:
                um = _TRANSLATE.search(use.get("transform", ""))
                cy = float(um.group(2)) + dy if um else rect[1] + rect[3] / 2
                filled = not any(g in use.get(_XLINK, "") for g in _HOLLOW_GLYPHS)
                notes.append((el.get("id"), rect, cy, filled, staff_no))
        for child in el:
            walk(child, dx, dy, staff_no, system)
        if "measure" in cls and "bounding-box" not in cls and system is not None:
            system["_measure_staves"] = []

    walk(root, 0.0, 0.0, 1, None)
    page_notes = []
    for nid, (x, _, w, h), cy, filled, staff_no in notes:
        page_notes.append((nid, dict(page=page, top=(cy - h / 2) * scale, left=x * scale,
                                     height=h * scale, width=w * scale, staff=staff_no,
                                     filled=filled)))
    page_systems = []
    for s in systems:
        if s["box"] is None:
            continue
        x0, y0, x1, y1 = (v * scale for v in s["box"])
        lines = [v * scale for k in sorted(s["staves"]) for v in s["staves"][k]]
        page_systems.append(System(page=page, top=y0, left=x0, bottom=y1, right=x1,
                                   staff_lines=lines))
    return page_notes, page_systems


def _tie_continuations(mei: str) -> set[str]:
    """Ids of notes that continue a tie (they start no new sound)."""
    ends = set(re.findall(r'<tie\b[^>]*\bendid="#([^"]+)"', mei))
    for m in re.finditer(r'<note\b[^>]*>', mei):
        tag = m.group(0)
        tie = re.search(r'\btie="([^"]+)"', tag)
        nid = re.search(r'\bxml:id="([^"]+)"', tag)
        if tie and nid and tie.group(1) in ("m", "t"):
            ends.add(nid.group(1))
    return ends


def _count_measures(mei: str) -> int:
    """Measures of an MEI score (``<measure>`` elements)."""
    return len(re.findall(r"<measure\b", mei))


def _rasterize(svg: str) -> np.ndarray:
    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_width=PAGE_WIDTH_PX,
                           background_color="white")
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.uint8)


def engrave(musicxml: str | bytes) -> EngravedScore:
    """Engrave a MusicXML score with verovio.

    Parameters
    ----------
    musicxml : str or bytes
        MusicXML text, or the bytes of a compressed ``.mxl``.

    Returns
    -------
    EngravedScore
        Pages rasterized ``PAGE_WIDTH_PX`` wide (A4), noteheads in page pixels.

    Raises
    ------
    ValueError
        If verovio cannot read the score or it has no notes.
    """
    verovio.enableLog(verovio.LOG_ERROR)
    tk = verovio.toolkit()
    tk.setOptions(VEROVIO_OPTIONS)
    if isinstance(musicxml, bytes):
        ok = tk.loadZipDataBase64(base64.b64encode(musicxml).decode("ascii"))
    else:
        ok = tk.loadData(musicxml)
    if not ok or tk.getPageCount() == 0:
        raise ValueError("verovio could not read the score")
    onsets_ms: dict[str, float] = {}
    for entry in tk.renderToTimemap():
        for nid in entry.get("on", []):
            onsets_ms.setdefault(nid, float(entry["tstamp"]))  # first pass only
    mei = tk.getMEI()
    continuations = _tie_continuations(mei)
    pages, noteheads, systems = [], [], []
    for page in range(tk.getPageCount()):
        svg = tk.renderToSVG(page + 1)
        pages.append(_rasterize(svg))
        page_notes, page_systems = _parse_page(svg, page)
        systems.extend(page_systems)
        for nid, geom in page_notes:
            midi = tk.getMIDIValuesForElement(nid)
            if not midi or "pitch" not in midi:
                continue  # unpitched or cue material verovio does not play
            onset = None
            if nid in onsets_ms and nid not in continuations:
                onset = onsets_ms[nid] / 1000.0
            noteheads.append(Notehead(pitch=int(midi["pitch"]), onset_s=onset, ref=nid, **geom))
    if not noteheads:
        raise ValueError("the score has no notes")
    note_events = read_note_events(base64.b64decode(tk.renderToMIDI()))
    systems.sort(key=lambda s: (s.page, s.top))
    return EngravedScore(pages=pages, noteheads=noteheads, systems=systems,
                         note_events=note_events, engraver="verovio",
                         source=musicxml if isinstance(musicxml, str) else "",
                         source_suffix=".musicxml", measures=_count_measures(mei))
