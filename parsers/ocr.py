"""Text out of pictures: Tesseract (English, French and Spanish) on images and PDF pages.

Tesseract runs as a subprocess, one page at a time, with a timeout, and only ever reads a
grey-scale PNG made here by Pillow or PDFium, never the sender's bytes. It runs with
``OMP_THREAD_LIMIT=1``: its OpenMP threads make a page several times *slower* on a small
machine (0.6 s against 4 s for a note verbale on two cores), and the worker runs one
extraction per process anyway.

Everything is bounded: pages per document, pixels decoded (a 100 000 x 100 000 PNG is a
few kilobytes), pixels given to Tesseract, seconds per page. Failures raise
:class:`OcrError` with a reason fit for a person; the caller turns it into an error.
"""

from __future__ import annotations

import functools
import io
import math
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence

from PIL import Image, ImageSequence, UnidentifiedImageError

LANGUAGES = ("eng", "fra", "spa")
DPI = 200  # PDF pages are rendered at this resolution: enough for 10-point type
MAX_PAGES = 10  # pages or frames of one document read by OCR
MAX_SOURCE_PIXELS = 60_000_000  # more is a decompression bomb (A4 at 600 dpi is 35 M)
MAX_OCR_PIXELS = 16_000_000  # what Tesseract gets at most: an A4 page at 200 dpi is 3.9 M
UPSCALE_BELOW = 1_200  # screenshots and small scans read better at twice the size
MIN_SIDE = 40  # tracking pixels, spacers, bullets, icons and buttons: no text worth a run
MIN_PIXELS = 15_000
FORMATS = ("PNG", "JPEG", "GIF", "TIFF", "BMP")  # the formats the attachment readers send here
PAGE_TIMEOUT = 60.0  # seconds for one page; the worker also bounds the whole message


class OcrError(Exception):
    """OCR could not run or failed; ``str(e)`` says why, for the review queue."""


class OcrTimeout(OcrError):
    """A page took longer than the OCR time limit."""


@functools.cache
def _tesseract() -> tuple[str, str]:
    """(the tesseract binary, its ``-l`` argument); raises :class:`OcrError` if missing."""
    path = shutil.which("tesseract")
    if path is None:
        raise OcrError("OCR not available: tesseract is not installed")
    try:
        listed = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [path, "--list-langs"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise OcrError(f"OCR not available: {type(exc).__name__}") from exc
    have = {line.strip() for line in listed.stdout.decode(errors="replace").splitlines()[1:]}
    languages = [lang for lang in LANGUAGES if lang in have]
    if not languages:
        raise OcrError("OCR not available: no English, French or Spanish data for tesseract")
    return path, "+".join(languages)


def available() -> bool:
    try:
        _tesseract()
    except OcrError:
        return False
    return True


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"
    return env


def _clean(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.replace("\x0c", "\n").splitlines())
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _grey(image: Image.Image) -> Image.Image:
    """A grey-scale copy; transparency goes on white (a transparent PNG is black to L)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("L")
    if image.mode in ("1", "L"):
        return image.convert("L")
    return image.convert("RGB").convert("L")


def _fit(image: Image.Image) -> Image.Image:
    width, height = image.size
    pixels = width * height
    if pixels > MAX_OCR_PIXELS:
        scale = math.sqrt(MAX_OCR_PIXELS / pixels)
    elif max(width, height) < UPSCALE_BELOW:
        scale = 2.0
    else:
        return image
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def ocr_image(
    image: Image.Image, *, dpi: int | None = None, timeout: float = PAGE_TIMEOUT
) -> str:
    """The text Tesseract reads in ``image`` (any mode, any size: it is prepared here).

    Raises :class:`OcrTimeout` when Tesseract takes longer than ``timeout`` seconds."""
    path, languages = _tesseract()
    prepared = _fit(_grey(image))
    buffer = io.BytesIO()
    prepared.save(buffer, format="PNG")
    args = [path, "stdin", "stdout", "-l", languages, "--psm", "3"]
    if dpi is not None and prepared.size == image.size:
        args += ["--dpi", str(dpi)]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            args,
            input=buffer.getvalue(),
            capture_output=True,
            timeout=timeout,
            env=_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OcrTimeout(f"OCR timed out after {timeout:g} s on a page") from exc
    except OSError as exc:
        raise OcrError(f"OCR failed to start: {exc.strerror or type(exc).__name__}") from exc
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise OcrError(f"OCR failed: {why[-1][:120] if why else f'exit {done.returncode}'}")
    return _clean(done.stdout.decode("utf-8", errors="replace"))


def image_frames(data: bytes, *, max_frames: int = MAX_PAGES) -> Iterator[Image.Image]:
    """The pages of an image file (a multi-page TIFF fax has several; a GIF shows its first).

    Raises :class:`OcrError` for what is no image, or one too large to decode safely.
    """
    try:
        # Only these decoders: Pillow would hand an EPS to Ghostscript, for one.
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise OcrError("image too large to read (decompression bomb?)") from exc
    except UnidentifiedImageError as exc:  # its message names a memory address: not stable
        raise OcrError("unreadable image: unknown or damaged format") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise OcrError(f"unreadable image: {str(exc)[:120] or type(exc).__name__}") from exc
    with image:
        width, height = image.size
        if width * height > MAX_SOURCE_PIXELS:
            raise OcrError(f"image too large to read: {width}x{height} pixels")
        if image.format == "JPEG" and width * height > MAX_OCR_PIXELS:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a huge photo never fills memory.
            scale = math.sqrt(MAX_OCR_PIXELS / (width * height))
            image.draft("L", (int(width * scale) + 1, int(height * scale) + 1))
        frames = 1 if image.format == "GIF" else max_frames
        for count, frame in enumerate(ImageSequence.Iterator(image)):
            if count >= frames:
                return
            if frame.size[0] * frame.size[1] > MAX_SOURCE_PIXELS:
                raise OcrError(f"image too large to read: {frame.size[0]}x{frame.size[1]}")
            try:
                frame.load()
            except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
                raise OcrError(f"unreadable image: {str(exc)[:120] or type(exc).__name__}") from exc
            yield frame.copy()


def too_small(image: Image.Image) -> bool:
    """Icons, bullets, spacers and tracking pixels: not worth a Tesseract run."""
    width, height = image.size
    return min(width, height) < MIN_SIDE or width * height < MIN_PIXELS


def pdf_pages(
    data: bytes, pages: Sequence[int], *, dpi: int = DPI
) -> Iterator[tuple[int, Image.Image]]:
    """(page number, picture) for ``pages`` (0-based) of a PDF, rendered grey with PDFium at
    ``dpi`` (less for a huge page). Pages that do not exist are left out.

    Raises :class:`OcrError` when PDFium cannot open the document.
    """
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise OcrError(f"PDF pages cannot be rendered: {str(exc)[:120]}") from exc
    try:
        count = len(document)
        for number in pages:
            if not 0 <= number < count:
                continue
            page = document[number]
            try:
                width, height = page.get_size()
                if not (width > 0 and height > 0):
                    continue
                scale = dpi / 72
                if width * height * scale * scale > MAX_OCR_PIXELS:
                    scale = math.sqrt(MAX_OCR_PIXELS / (width * height))
                bitmap = page.render(scale=scale, grayscale=True)
                try:
                    image: Image.Image = bitmap.to_pil()
                    yield number, image.copy()
                finally:
                    bitmap.close()
            finally:
                page.close()
    finally:
        document.close()
