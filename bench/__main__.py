"""Run a benchmark suite: ``python -m bench <suite> [options]``; ``python -m bench`` lists them."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def suites() -> list[str]:
    here = Path(__file__).parent
    skip = {"common", "__main__", "gpu_check"}
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in skip and not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = suites()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench SUITE [options]\n\nsuites:")
        for n in names:
            mod = importlib.import_module(f"bench.{n}")
            doc = (mod.__doc__ or "").strip().splitlines()
            print(f"  {n:<10} {doc[0] if doc else ''}")
        return 0
    name = argv[0]
    if name not in names:
        print(f"bench: unknown suite {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"bench.{name}")
    return int(mod.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
