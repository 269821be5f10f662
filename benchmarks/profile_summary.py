"""Where a profiled server spends its time: the top functions of a py-spy raw profile.

    python -m benchmarks.compare --servers gqlchannels --layers memory \
        --scenarios fanout_max --passes 1 --profile gqlchannels --profile-raw
    python -m benchmarks.profile_summary benchmarks/results/profile-...-gqlchannels-memory.txt

"Self" is time in the function's own code, "inclusive" includes what it calls. Samples of
idle pool threads (py-spy counts a thread blocked in ``queue.get`` as running) are left out;
the percentages are of every other sample, the event loop's thread and any thread doing
work (gqlchannels' registry writes in Django's database thread, for one).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: Frames of threads that only wait (thread pools between jobs).
IDLE_FRAMES = ("_worker (concurrent/futures/thread.py)",)
_LINE = re.compile(r":\d+\)$")


def summarise(path: Path, top: int = 25) -> str:
    """The ``top`` functions by self and by inclusive time, as text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if frames[-1] in IDLE_FRAMES:
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    """Print the summary of the profile named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="a py-spy raw (folded stacks) profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
