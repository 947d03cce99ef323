"""Is a JPEG whole? Cut in the middle of its compressed pixel data (a download that
stopped) with an end marker appended, a JPEG decodes without a word: libjpeg warns that
the data ended early, Pillow does not pass the warning on, and every block after the cut
comes out flat grey (or blurred, in a progressive file that lost its last scans).
``cut_scan`` finds both:

- every coefficient of every colour component must get its last bit in some scan: a
  progressive file sends them in several scans, by frequency band and bit;
- the file is decoded a second time with junk bytes put just before its end marker. A whole
  scan never reads past its last block, so the junk is skipped and the pixels stay the same;
  a cut scan reads the junk as the blocks it is missing, and they change. In a file with
  restart markers (a marker every so many blocks) the junk is put again after the next one,
  which a scan cut at a restart reads on into.

JPEG (ITU-T T.81, https://www.w3.org/Graphics/JPEG/itu-t81.pdf): after the start marker
FF D8, segments of marker (FF xx), length (2 bytes, big-endian, counting itself) and data.
The frame header (SOF) lists the components; each scan header (SOS, FF DA) names its
components, its band of coefficients Ss..Se and the bit Al it ends with, and is followed by
entropy-coded data, in which FF is followed by 00 (a stuffed FF byte) or a restart marker
(FF D0 to FF D7), until the next marker. FF D9 ends the image.
"""
import io
import re

from PIL import Image

# FF, then a byte that makes it a marker: not stuffing (00), a restart (D0-D7) or fill (FF)
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")
# frame headers of the DCT processes (C3, C7, CB and CF are lossless: no coefficients)
DCT_FRAMES = {0xC0, 0xC1, 0xC2, 0xC5, 0xC6, 0xC9, 0xCA, 0xCD, 0xCE}
# without FF (they would be read as a marker), varied so that they decode as non-zero
# blocks, and starting with a 1 bit where libjpeg fills in 0 bits
JUNK = bytes((i * 101 + 170) % 255 for i in range(64))


def segments(data):
    """(components, scans, end, restart) of the JPEG ``data`` (bytes): the DCT frame's component
    ids, each scan's (ids, Ss, Se, Al), the offset of the end marker after the last scan,
    before any fill bytes (None when the segments cannot be followed to it), and the restart
    marker the last scan would have next (b"" without restarts)."""
    components, scans, pos, interval, restarts = [], [], 2, 0, 0
    while pos + 2 <= len(data) and data[pos] == 0xFF:
        kind = data[pos + 1]
        if kind == 0xD9:
            return components, scans, pos, bytes([0xFF, 0xD0 + restarts % 8]) if interval else b""
        if kind == 0xFF:                            # a fill byte before a marker
            pos += 1
            continue
        if kind == 0x01 or 0xD0 <= kind <= 0xD7:    # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        body, pos = data[pos + 4:pos + 2 + length], pos + 2 + length
        if kind in DCT_FRAMES and len(body) >= 6:
            components = list(body[6:6 + 3 * body[5]:3])
        if kind == 0xDD:                            # the restart interval, in blocks
            interval = int.from_bytes(body[:2], "big")
        if kind == 0xDA and body:                   # the scan's data runs to the next marker
            n = body[0]
            if len(body) >= 4 + 2 * n:
                ss, se, al = body[1 + 2 * n], body[2 + 2 * n], body[3 + 2 * n] & 15
                scans.append((list(body[1:1 + 2 * n:2]), ss, se, al))
            found = _MARKER.search(data, pos)
            if found is None:
                break
            restarts = len(_RESTART.findall(data, pos, found.start()))
            pos = found.start()
            while data[pos - 1] == 0xFF:
                pos -= 1
    return components, scans, None, b""


def complete(components, scans):
    """Does every coefficient (0..63) of every component get its last bit (Al = 0)?"""
    done = {c: [False] * 64 for c in components}
    for ids, ss, se, al in scans:
        for c in ids:
            if c in done and al == 0:
                done[c][ss:se + 1] = [True] * len(done[c][ss:se + 1])
    return all(all(bits) for bits in done.values())


def cut_scan(data, decoded):
    """True when the JPEG ``data`` (bytes), which Pillow decoded to the loaded Image
    ``decoded``, lacks scans or has a scan that ends before its last block. The last few bits
    of a scan can escape: the zeros libjpeg puts in their place may be what they were."""
    components, scans, end, restart = segments(data)
    if not complete(components, scans):
        return True
    if end is None:
        return False
    forged = data[:end] + JUNK + restart + JUNK + data[end:]
    try:
        with Image.open(io.BytesIO(forged), formats=["JPEG"]) as again:
            again.load()
            return again.tobytes() != decoded.tobytes()
    except (OSError, ValueError, SyntaxError):     # the junk broke it: it was read as data
        return True
