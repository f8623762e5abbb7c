"""Images that are hostile to face detection, for tests/hostile_faces.rs.

    make_hostile_faces.py OUT_DIR ASTRONAUT_PNG

- crowd.png: 300 copies of the astronaut's face (a 48 x 48 crop) on a
  20 x 15 grid, 960 x 720: far more faces than any image may have scored;
- dot.png: a 1 x 1 image;
- giant_header.png: a valid PNG signature and IHDR claiming 20000 x 20000
  RGB, followed by a few bytes of image data: the pixel limit must refuse it
  before anything of that size is allocated.
"""

import struct
import sys
import zlib
from pathlib import Path

from PIL import Image


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def main() -> None:
    out, astronaut = Path(sys.argv[1]), Image.open(sys.argv[2]).convert("RGB")
    out.mkdir(parents=True, exist_ok=True)
    # The face sits at about (180..270, 55..180) in the 512 x 512 sample.
    face = astronaut.crop((160, 40, 290, 190)).resize((48, 48), Image.BILINEAR)
    crowd = Image.new("RGB", (960, 720), (90, 90, 90))
    for row in range(15):
        for col in range(20):
            crowd.paste(face, (col * 48, row * 48))
    crowd.save(out / "crowd.png")
    Image.new("RGB", (1, 1), (200, 150, 120)).save(out / "dot.png")
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    (out / "giant_header.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    main()
