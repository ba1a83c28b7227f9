"""Cut a video (sac.play --video out.mp4) into a GIF small enough for a README.

    python benchmarks/gif.py in.mp4 out.gif --seconds 6 --width 240 --every 2

Takes the first --seconds of the video, keeps every --every-th frame (the GIF plays at the video's
speed: each kept frame is shown --every times as long), scales to --width pixels wide, and prints
the file's size.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("gif", type=Path)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--width", type=int, default=240)
    parser.add_argument("--every", type=int, default=2)
    args = parser.parse_args(argv)
    reader = imageio.get_reader(str(args.video))
    fps = float(reader.get_meta_data().get("fps", 30))
    frames = []
    for index, frame in enumerate(reader):
        if index >= args.seconds * fps:
            break
        if index % args.every == 0:
            image = Image.fromarray(np.asarray(frame))
            height = round(image.height * args.width / image.width)
            frames.append(np.asarray(image.resize((args.width, height), Image.LANCZOS)))
    reader.close()
    if not frames:
        print(f"error: {args.video} has no frames", file=sys.stderr)
        return 1
    imageio.mimsave(str(args.gif), frames, duration=1000.0 * args.every / fps, loop=0)
    print(f"{args.gif}: {len(frames)} frames, {args.gif.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
