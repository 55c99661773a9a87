import json
import os
import subprocess

from conftest import EXAMPLE, REFERENCE_DIRS, load_json


def run(cli, *args, stdin=None):
    return subprocess.run([cli, *args], input=stdin, capture_output=True, text=True)


def test_segment_stdin_json(anchors_cli):
    text = "Voilà the first sentence. Then a second — with a dash!\n\nLast one here"
    out = run(anchors_cli, "segment", "-", stdin=text)
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)
    assert [set(i) for i in items] == [{"index", "text", "char_start", "char_end"}] * 3
    assert all(text[i["char_start"] : i["char_end"]] == i["text"] for i in items)


def test_segment_file_matches_reference(anchors_cli, tmp_path):
    base = load_json(REFERENCE_DIRS[3] / "base_solution.json")
    path = tmp_path / "solution.txt"
    path.write_text(base["solution"], encoding="utf-8")
    out = run(anchors_cli, "segment", str(path))
    assert out.returncode == 0, out.stderr
    labels = load_json(REFERENCE_DIRS[3] / "chunks_labeled.json")
    assert [i["text"] for i in json.loads(out.stdout)] == [c["chunk"] for c in labels]


def test_show_main_job(anchors_cli):
    out = run(anchors_cli, "show", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "139 sentences, answer 88572 (correct)" in out.stdout
    assert "top 10 anchors by counterfactual_importance_kl" in out.stdout
    assert "Let's start by labeling each layer for clarity." in out.stdout


def test_errors_exit_nonzero_with_message(anchors_cli, tmp_path):
    out = run(anchors_cli, "show", str(tmp_path / "missing.json"))
    assert out.returncode == 1 and "missing.json" in out.stderr
    out = run(anchors_cli, "segment", "-", "--no-such-option", stdin="x")
    assert out.returncode == 2 and "unknown option" in out.stderr
    out = run(anchors_cli)
    assert out.returncode == 2 and "usage" in out.stderr


def test_non_utf8_argument_names_the_file_instead_of_a_traceback(anchors_cli, tmp_path):
    """`anchors show $'caf\\xe9.json'` printed a Python traceback (UnicodeEncodeError): the console script now
    passes the shell's bytes on, so the file is found, and a missing one is a plain error."""
    name = b"caf\xe9"  # Latin-1, not UTF-8
    missing = subprocess.run([anchors_cli.encode(), b"show", bytes(tmp_path) + b"/" + name], capture_output=True)
    assert missing.returncode == 1 and b"Traceback" not in missing.stderr, missing.stderr
    assert missing.stderr.startswith(b"anchors: error:") and name in missing.stderr, missing.stderr
    os.symlink(EXAMPLE, tmp_path / os.fsdecode(name))  # the example's reference folder under that name
    found = subprocess.run([anchors_cli.encode(), b"show", bytes(tmp_path) + b"/" + name], capture_output=True)
    assert found.returncode == 0, found.stderr
    assert b"139 sentences" in found.stdout
