"""The loader on every kind of bad and odd input."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facecheck.loading import LoadError, decode, load_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size, with almost no data behind it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"<!DOCTYPE html><html><body>not found</body></html>", "not an image (an HTML page)"),
    (bytes(range(256)) * 10, "not an image"),
])
def test_non_images_give_one_line_errors(data, message):
    with pytest.raises(LoadError) as e:
        decode(data)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_truncated_jpeg(photo):
    data = encode(photo, "JPEG", quality=90)
    with pytest.raises(LoadError, match="truncated|cannot decode"):
        decode(data[: len(data) // 2])


def test_decompression_bomb_refused_from_header_without_decoding():
    with pytest.raises(LoadError, match="decompression bomb"):
        decode(png_claiming(100_000, 100_000))


def test_pixel_limit_is_configurable(photo):
    data = encode(photo, "PNG")
    with pytest.raises(LoadError, match="pixel limit"):
        decode(data, max_pixels=1000)
    assert decode(data, max_pixels=300 * 300).image.size == (300, 300)


def test_file_size_limit(tmp_path, photo):
    path = tmp_path / "big.png"
    photo.save(path)
    with pytest.raises(LoadError, match="over the"):
        load_image(path, max_bytes=100)


def test_cmyk_jpeg_becomes_rgb(photo):
    loaded = decode(encode(photo.convert("CMYK"), "JPEG", quality=95))
    assert loaded.image.mode == "RGB"
    assert np.abs(np.asarray(loaded.image, float) - np.asarray(photo, float)).mean() < 12


def test_16_bit_grey_png_is_rescaled_not_clipped():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    loaded = decode(encode(Image.fromarray(ramp), "PNG"))
    arr = np.asarray(loaded.image)
    assert loaded.image.mode == "RGB" and arr.min() == 0 and arr.max() == 255
    assert 120 < arr.mean() < 135   # a clip at 255 would make it almost all white


def test_rgba_is_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255             # top half opaque red, bottom half transparent
    arr = np.asarray(decode(encode(Image.fromarray(rgba), "PNG")).image)
    assert tuple(arr[0, 0]) == (255, 0, 0) and tuple(arr[7, 7]) == (255, 255, 255)


def test_palette_with_transparency():
    img = Image.new("P", (10, 10), 0)
    img.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    arr = np.asarray(decode(encode(img, "PNG", transparency=0)).image)
    assert tuple(arr[5, 5]) == (255, 255, 255)
    arr = np.asarray(decode(encode(img, "PNG")).image)
    assert tuple(arr[5, 5]) == (0, 0, 255)


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    arr = np.asarray(decode(buf.getvalue()).image)
    assert arr[8, 8, 0] > 200 and arr[8, 8, 1] < 50


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "GIF", "PNG", "JPEG"])
def test_formats(photo, fmt):
    loaded = decode(encode(photo, fmt))
    assert loaded.image.mode == "RGB" and (loaded.width, loaded.height) == (300, 300)


def test_exif_rotation_applied_and_reported_size(photo):
    wide = photo.crop((0, 0, 300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90 clockwise to display
    loaded = decode(encode(wide, "JPEG", exif=exif.tobytes()))
    assert (loaded.width, loaded.height) == (200, 300) and loaded.image.size == (200, 300)


def test_one_pixel_image():
    loaded = decode(encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    assert loaded.image.size == (1, 1)


def test_wrong_extension_still_loads(tmp_path, photo):
    path = tmp_path / "really_a_png.jpg"
    photo.save(path, "PNG")
    assert load_image(path).image.size == (300, 300)


def test_unicode_name(tmp_path, photo):
    path = tmp_path / "фото_写真_🙂.jpg"
    photo.save(path, "JPEG")
    assert load_image(path).width == 300


def test_reduced_size_jpeg_decoding(photo):
    big = photo.resize((2400, 2400))
    loaded = decode(encode(big, "JPEG"), min_side=512)
    assert (loaded.width, loaded.height) == (2400, 2400)      # full size is still reported
    assert loaded.image.width < 2400 and loaded.image.width >= 512
    assert loaded.scale == loaded.image.width / 2400


def test_numpy_and_pil_inputs(photo):
    arr = np.asarray(photo)
    assert load_image(arr).image.size == (300, 300)
    assert load_image(arr[:, :, 0]).image.mode == "RGB"
    assert load_image(photo.convert("L")).image.mode == "RGB"
    with pytest.raises(LoadError):
        load_image(arr.astype(np.float32))


def _frames(n: int = 3) -> list[Image.Image]:
    return [Image.fromarray(np.random.RandomState(i).randint(0, 255, (64, 64, 3), np.uint8)) for i in range(n)]


@pytest.mark.parametrize("fmt, keep", [("GIF", 2 / 3), ("TIFF", 2 / 3)])
def test_a_damaged_later_frame_does_not_fail_frame_0(fmt, keep):
    frames = _frames()
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
    data = buf.getvalue()
    loaded = decode(data[: int(len(data) * keep)])   # frame 0 intact, a later frame cut off
    assert loaded.image.size == (64, 64)
    assert np.abs(np.asarray(loaded.image, int) - np.asarray(frames[0], int)).mean() < 30


def test_any_decoder_failure_is_a_load_error_with_its_kind(monkeypatch, photo):
    data = encode(photo, "PNG")

    def broken(self, *a, **k):
        raise TypeError("Missing dimensions")
    monkeypatch.setattr(Image.Image, "load", broken)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", broken)
    with pytest.raises(LoadError, match=r"cannot decode image \(TypeError: Missing dimensions\)"):
        decode(data)


def test_pixel_limit_above_pillows_own_and_bombs_in_facecheck_wording():
    claim = png_claiming(20_000, 10_000)   # 200 Mpixel: over Pillow's default 2 x 89.5M refusal
    with pytest.raises(LoadError) as e:
        decode(claim)
    assert "50,000,000-pixel limit" in str(e.value) and "DOS attack" not in str(e.value)
    with pytest.raises(LoadError) as e:
        decode(claim, max_pixels=300_000_000)   # allowed by size: fails only for its missing pixel data
    assert "pixel limit" not in str(e.value) and "bomb" not in str(e.value)
    with pytest.raises(LoadError, match="over the 300,000,000-pixel limit"):
        decode(png_claiming(100_000, 100_000), max_pixels=300_000_000)


def test_undecodable_bytes_keep_their_sha256(photo):
    import hashlib
    data = encode(photo, "JPEG", quality=90)[:3000]
    with pytest.raises(LoadError) as e:
        decode(data)
    assert e.value.sha256 == hashlib.sha256(data).hexdigest()


def test_decoder_warnings_are_kept_with_the_image_not_printed(recwarn):
    tags = Image.Exif()
    tags[0x010E] = "a description of the photo"
    exif = bytearray(tags.tobytes())
    exif[20:24] = (5000).to_bytes(4, "big")   # the tag claims more bytes than the file holds
    loaded = decode(encode(Image.new("RGB", (32, 32)), "JPEG", exif=bytes(exif)))
    assert loaded.warnings and "larger than file" in loaded.warnings[0]
    assert len(recwarn) == 0


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="not a regular file \\(a FIFO\\)"):
        load_image(fifo)


def test_a_decode_that_hangs_is_cut_off_with_a_load_error(monkeypatch, photo):
    import time
    data = encode(photo, "PNG")

    def endless(self, *a, **k):
        while True:   # a decoder stuck on a pathological file
            time.sleep(0.01)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", endless)
    started = time.perf_counter()
    with pytest.raises(LoadError, match="took over 0.5 s"):
        decode(data, max_seconds=0.5)
    assert time.perf_counter() - started < 3
