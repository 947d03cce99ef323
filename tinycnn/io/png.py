"""Is a PNG's pixel data whole? Pillow decodes a PNG whose compressed pixel stream ends
early but cleanly (a forged or badly written file) without a word, and the rows it never
got come out black. ``missing_bytes`` counts what the header promises against what the
IDAT chunks hold.

PNG (ISO/IEC 15948, https://www.w3.org/TR/png-3/): after the 8-byte signature, chunks of
length (4 bytes, big-endian), type (4), data, CRC (4). IHDR gives width, height, bit depth,
colour type and interlace; the IDAT chunks together are one zlib stream of filtered rows,
each row one filter byte then ceil(width * bits per pixel / 8) bytes. Interlaced images
(Adam7) store seven reduced images one after another, each with its own rows.
"""
import struct
import zlib

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}     # colour type: grey, RGB, palette, grey + alpha, RGBA
# Adam7's passes: (first column, first row, column step, row step)
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def expected_bytes(width, height, bit_depth, colour_type, interlace):
    """Bytes of the decompressed, filtered pixel stream that IHDR's values call for."""
    bits = bit_depth * CHANNELS[colour_type]

    def rows(w, h):
        # an empty pass has no rows at all
        return h * (1 + (w * bits + 7) // 8) if w and h else 0
    if not interlace:
        return rows(width, height)
    return sum(
        rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in ADAM7
    )


def missing_bytes(data):
    """(got, expected) bytes of the pixel stream of the PNG file ``data`` (bytes): got < expected
    when the stream ends early. None when the chunks cannot be read (Pillow says why then)."""
    pos, header, stream, got = 8, None, zlib.decompressobj(), 0
    try:
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            pos += 12 + length
            if kind == b"IHDR" and header is None:  # only the first counts, as for Pillow
                width, height, depth, colour, _, _, interlace = struct.unpack(
                    ">IIBBBBB", body[:13]
                )
                header = expected_bytes(width, height, depth, colour, interlace)
            elif kind == b"IDAT" and header is not None:
                got += _count(stream, body, header - got)
            elif kind == b"IEND":
                break
    except (struct.error, KeyError, zlib.error):
        return None
    return None if header is None else (got, header)


def _count(stream, body, wanted, piece=1 << 20):
    """Bytes that ``body`` adds to the zlib stream, counted up to ``wanted``, a megabyte at a time
    (nothing is kept: a forged header cannot make this allocate its whole image)."""
    got, data = 0, body
    while got < wanted and data and not stream.eof:
        got += len(stream.decompress(data, min(piece, wanted - got)))
        data = stream.unconsumed_tail
    return got
