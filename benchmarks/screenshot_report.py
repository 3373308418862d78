"""Render a `genodiff evaluate` report.html in headless Chromium to a PNG, as a reader's browser
shows it (Debian: `apt-get install chromium`).

    python benchmarks/screenshot_report.py runs/demo/report/report.html docs/report/demo.png \
        [--width 1400] [--height 20000] [--top 1800]

The page is drawn in a window `--width` pixels wide and `--height` tall (taller than the page),
and the blank rows below the page are cut off. `--top N` also writes `<out>_top.png`, the first N
pixels (the summary table and its legend). Prints the PNG's size. Exits 2 when no Chromium is found.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(html: Path, out: Path, *, width: int = 1400, height: int = 20000,
               browser: str | None = None, timeout: float = 120.0) -> tuple[int, int]:
    """`html` drawn by headless Chromium into `out` (PNG), blank rows below the page removed;
    returns (width, height) of the PNG."""
    from PIL import Image, ImageChops

    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError(f"no Chromium found on PATH (tried {', '.join(BROWSERS)})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "page.png"
        # --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers).
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--screenshot={raw}",
                        html.resolve().as_uri()],
                       check=True, timeout=timeout, capture_output=True)
        image = Image.open(raw).convert("RGB")
        blank = Image.new("RGB", image.size, image.getpixel((image.width - 1,
                                                             image.height - 1)))
        box = ImageChops.difference(image, blank).getbbox()
        bottom = min(image.height, box[3] + 24) if box else image.height
        image = image.crop((0, 0, image.width, bottom))
        image.save(out, optimize=True)
        return image.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="a report.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=20000, help="taller than the page")
    parser.add_argument("--top", type=int, default=0, help="also write <out>_top.png, N pixels")
    parser.add_argument("--browser", default=None, help="the Chromium binary (default: PATH)")
    args = parser.parse_args()
    if (args.browser or find_browser()) is None:
        print(f"no Chromium found (tried {', '.join(BROWSERS)}): apt-get install chromium",
              file=sys.stderr)
        sys.exit(2)
    size = screenshot(args.html, args.out, width=args.width, height=args.height,
                      browser=args.browser)
    print(f"{args.out}: {size[0]} x {size[1]} pixels")
    if args.top:
        from PIL import Image

        top = args.out.with_name(f"{args.out.stem}_top.png")
        with Image.open(args.out) as image:
            image.crop((0, 0, image.width, min(args.top, image.height))).save(top, optimize=True)
        print(f"{top}: first {min(args.top, size[1])} pixels")


if __name__ == "__main__":
    main()
