"""MuNG (MUSCIMA++ CropObject XML): the per-page notehead and system objects of MSMD.

Each page of a score has ``mung/NN.xml`` listing ``CropObject`` elements with
``Id``, ``ClassName``, ``Top``, ``Left``, ``Width``, ``Height`` (pixels),
``Outlinks`` (ids of linked objects) and ``Data`` items. Noteheads
(``notehead-full``/``notehead-empty``) link to their system (``staff``) and carry
``midi_pitch_code`` and, per performance, ``<perf>_note_event_idx``,
``<perf>_onset_seconds`` and ``<perf>_onset_frame``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

NOTEHEAD_CLASSES = ("notehead-full", "notehead-empty")
SYSTEM_CLASS = "staff"
_TYPES = {"int": int, "float": float, "str": str}


@dataclass
class CropObject:
    """One MuNG object; box in page pixels."""

    objid: int
    clsname: str
    top: float
    left: float
    height: float
    width: float
    outlinks: list[int] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def middle(self) -> tuple[float, float]:
        """(row, column) of the box centre, in page pixels."""
        return self.top + self.height / 2.0, self.left + self.width / 2.0


def write_mung(objects: list[CropObject], path: Path) -> None:
    """Write a page's objects as a MuNG CropObjectList XML file."""
    root = ET.Element("CropObjectList")
    objs = ET.SubElement(root, "CropObjects")
    for o in objects:
        el = ET.SubElement(objs, "CropObject")
        for tag, value in (("Id", o.objid), ("ClassName", o.clsname), ("Top", round(o.top)),
                           ("Left", round(o.left)), ("Width", max(1, round(o.width))),
                           ("Height", max(1, round(o.height)))):
            ET.SubElement(el, tag).text = str(value)
        if o.outlinks:
            ET.SubElement(el, "Outlinks").text = " ".join(map(str, o.outlinks))
        if o.data:
            data = ET.SubElement(el, "Data")
            for key, value in o.data.items():
                kind = "int" if isinstance(value, int) else "float" if isinstance(value, float) else "str"
                item = ET.SubElement(data, "DataItem", key=key, type=kind)
                item.text = repr(value) if kind == "float" else str(value)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def read_mung(path: Path) -> list[CropObject]:
    """Read a MuNG CropObjectList XML file.

    Raises
    ------
    ValueError
        If the file is not MuNG XML (the caller names the file).
    """
    root = ET.parse(path).getroot()
    out = []
    for el in root.iter("CropObject"):
        def text(tag, default=None, el=el):
            child = el.find(tag)
            return child.text if child is not None and child.text is not None else default

        clsname = text("ClassName") or text("MLClassName")
        if clsname is None or text("Id") is None:
            raise ValueError("CropObject without Id or ClassName")
        data = {}
        for item in el.iter("DataItem"):
            data[item.get("key")] = _TYPES.get(item.get("type"), str)(item.text)
        outlinks = [int(v) for v in (text("Outlinks", "") or "").split()]
        out.append(CropObject(int(text("Id")), clsname, float(text("Top")), float(text("Left")),
                              float(text("Height")), float(text("Width")), outlinks, data))
    return out
