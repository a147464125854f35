"""The project folder the agents work in: a text file and a small PNG for them to read."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["NOTE", "NOTE_TEXT", "PICTURE", "make_workspace", "png"]

NOTE = "notes.txt"
NOTE_TEXT = "The build number is 4711.\n"
PICTURE = "pixel.png"


def png(width: int = 16, height: int = 16, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid RGB PNG of one colour (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def make_workspace(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NOTE).write_text(NOTE_TEXT)
    (folder / PICTURE).write_bytes(png())
    return folder
