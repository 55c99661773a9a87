"""Console entry point: `anchors ...` runs the C++ command line (same code as the C++ executable)."""

import sys


def main(argv=None) -> int:
    from . import _C

    args = list(sys.argv[1:] if argv is None else argv)
    return _C.run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
