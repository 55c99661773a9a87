#!/usr/bin/env python3
"""Generates src/torch/model/tokenizer_unicode_tables.inc, the Unicode data of the tokenizer.

The C++ tokenizer must reproduce HF `tokenizers` bit for bit, and HF mixes several Unicode versions,
one per Rust crate it uses. Each table below is built for the version of the component it mirrors:

| table                                  | mirrors (tokenizers 0.23)                    | Unicode |
|----------------------------------------|----------------------------------------------|---------|
| \\p{L}, \\p{N}, \\s of the Split regexes  | oniguruma (pre-tokenizer regexes)            | 16.0    |
| \\w (single_word added tokens)          | the `regex` crate                            | 16.0    |
| BERT control / punctuation / Mn        | the `unicode_categories` crate               | 8.0     |
| canonical decompositions, ccc, pairs   | `unicode-normalization-alignments` 0.1.12    | 9.0     |
| lowercase mapping                      | Rust std `char::to_lowercase`                | 17.0    |

Source of the data: Python's unicodedata API in the `unicodedataplus` package (Unicode 16.0.0, it also
has `age`), and `str.lower` of this interpreter for case. An older version is derived from 16.0 data:
a code point assigned by version V keeps its decomposition and combining class forever (Unicode's
stability policy), so the 9.0 normalization data is the 16.0 data restricted to code points of age
<= 9.0; general categories can change, so the 8.0 categories are the 16.0 ones of code points of age
<= 8.0 except the few listed in CATEGORY_CHANGES_SINCE_8_0. Case mappings of code points newer than this
interpreter's Unicode are read from HF's own Lowercase normalizer (the only data not derived from a
Unicode database; there are a few dozen, Garay and Latin additions of 16.0/17.0).

Every table is then checked against HF `tokenizers` code point by code point (regex classes through a
Split pre-tokenizer, BERT sets through BertNormalizer/BertPreTokenizer, NFD/NFC of every scalar alone,
every composition pair, the canonical ordering of every non-starter, lowercase). Any disagreement stops
the script, so a committed table is one HF agrees with.

Usage (from the repository root, with the project's venv that has `tokenizers`):
    .venv/bin/pip install unicodedataplus==16.0.0.post1
    .venv/bin/python scripts/gen_unicode_tables.py
"""

import argparse
import sys
from pathlib import Path

import unicodedataplus as ucd

try:
    import tokenizers
    from tokenizers import Regex, normalizers, pre_tokenizers
except ImportError:  # pragma: no cover - the check needs HF tokenizers
    sys.exit("gen_unicode_tables.py: HF `tokenizers` is needed to verify the tables (pip install tokenizers)")

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "src" / "model" / "tokenizer_unicode_tables.inc"

SCALARS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]

# Code points assigned by Unicode 8.0 whose General_Category changed between 8.0 and 16.0, with their
# 8.0 category (DerivedAge + the UnicodeData.txt history). Checked against HF below.
CATEGORY_CHANGES_SINCE_8_0 = {
    0x166D: "Po",   # CANADIAN SYLLABICS CHI SIGN: Po -> So (12.0)
    0x111C9: "Po",  # SHARADA SANDHI MARK: Po -> Mn (11.0)
    0x1734: "Mn",   # HANUNOO SIGN PAMUDPOD: Mn -> Mc (14.0)
    0x1885: "Lo",   # MONGOLIAN LETTER ALI GALI BALUDA: Lo -> Mn (9.0)
    0x1886: "Lo",   # MONGOLIAN LETTER ALI GALI THREE BALUDA: Lo -> Mn (9.0)
    0xA9BD: "Mc",   # JAVANESE CONSONANT SIGN KERET: Mc -> Mn (12.0)
    0x1171E: "Mn",  # AHOM CONSONANT SIGN MEDIAL RA: Mn -> Mc (14.0)
}

# Other_Alphabetic code points outside General_Category M (PropList.txt): part of \w via Alphabetic.
OTHER_ALPHABETIC_NON_MARK = [(0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189)]

S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28
S_COUNT = L_COUNT * V_COUNT * T_COUNT

# Property bits (mirrored by the enum written into the .inc).
LETTER, NUMBER, WHITE_SPACE, WORD, BERT_CONTROL, BERT_PUNCTUATION, BERT_NONSPACING_MARK = (
    1, 2, 4, 8, 16, 32, 64)


def age(c):
    a = ucd.age(chr(c))
    if not a or a.lower() == "unassigned":
        return (99, 0)
    major, minor = a.split(".")[:2]
    return (int(major), int(minor))


def category(c):
    return ucd.category(chr(c))


def category_8_0(c):
    if age(c) > (8, 0):
        return "Cn"
    return CATEGORY_CHANGES_SINCE_8_0.get(c, category(c))


def is_white_space(c):
    # White_Space (PropList.txt) = Zs | Zl | Zp | U+0009..U+000D | U+0085.
    return category(c) in ("Zs", "Zl", "Zp") or 0x09 <= c <= 0x0D or c == 0x85


def is_word(c):
    cat = category(c)
    alphabetic = cat in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nl") or any(
        lo <= c <= hi for lo, hi in OTHER_ALPHABETIC_NON_MARK)
    return alphabetic or cat[0] == "M" or cat in ("Nd", "Pc") or c in (0x200C, 0x200D)


def property_flags(c):
    cat = category(c)
    cat8 = category_8_0(c)
    flags = 0
    if cat[0] == "L":
        flags |= LETTER
    if cat[0] == "N":
        flags |= NUMBER
    if is_white_space(c):
        flags |= WHITE_SPACE
    if is_word(c):
        flags |= WORD
    if cat8 in ("Cc", "Cf", "Co"):
        flags |= BERT_CONTROL
    if cat8[0] == "P" or (c < 0x80 and chr(c) in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"):
        flags |= BERT_PUNCTUATION
    if cat8 == "Mn":
        flags |= BERT_NONSPACING_MARK
    return flags


# ----------------------------------------------------------------------------- normalization (9.0)
def is_hangul_syllable(c):
    return S_BASE <= c < S_BASE + S_COUNT


def raw_canonical_decomposition(c):
    """The UnicodeData.txt canonical mapping (one level), or None; 9.0 view."""
    if age(c) > (9, 0) or is_hangul_syllable(c):
        return None
    d = ucd.decomposition(chr(c))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def full_decomposition(c):
    d = raw_canonical_decomposition(c)
    if d is None:
        return None
    out = []
    for x in d:
        sub = full_decomposition(x)
        out.extend(sub if sub is not None else [x])
    return out


def combining_class(c):
    return ucd.combining(chr(c)) if age(c) <= (9, 0) else 0


def composition_pairs():
    pairs = {}
    for c in SCALARS:
        d = raw_canonical_decomposition(c)
        if d is None or len(d) != 2:
            continue
        # Full_Composition_Exclusion: a decomposable code point NFC does not keep.
        if ucd.normalize("NFC", chr(c)) != chr(c):
            continue
        pairs[(d[0], d[1])] = c
    return pairs


def model_nfd(cps, decomp, ccc):
    out = []
    for c in cps:
        if is_hangul_syllable(c):
            s = c - S_BASE
            parts = [L_BASE + s // (V_COUNT * T_COUNT), V_BASE + (s % (V_COUNT * T_COUNT)) // T_COUNT]
            if s % T_COUNT:
                parts.append(T_BASE + s % T_COUNT)
        else:
            parts = decomp.get(c, [c])
        out.extend(parts)
    # canonical ordering: stable sort of every run of non-starters
    i = 0
    while i < len(out):
        if ccc.get(out[i], 0) == 0:
            i += 1
            continue
        j = i
        while j < len(out) and ccc.get(out[j], 0) != 0:
            j += 1
        out[i:j] = sorted(out[i:j], key=lambda x: ccc.get(x, 0))
        i = j
    return out


def model_compose(a, b, pairs):
    if L_BASE <= a < L_BASE + L_COUNT and V_BASE <= b < V_BASE + V_COUNT:
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT
    if is_hangul_syllable(a) and (a - S_BASE) % T_COUNT == 0 and T_BASE < b < T_BASE + T_COUNT:
        return a + (b - T_BASE)
    return pairs.get((a, b))


def model_nfc(cps, decomp, ccc, pairs):
    """The textbook canonical composition (UAX #15) over the canonical decomposition."""
    out = []
    starter = None  # index in out of the last starter
    last_class = 0  # class of the last code point appended after that starter
    for c in model_nfd(cps, decomp, ccc):
        cc = ccc.get(c, 0)
        if starter is not None:
            adjacent = len(out) - 1 == starter
            if adjacent or 0 < last_class < cc:
                composite = model_compose(out[starter], c, pairs)
                if composite is not None:
                    out[starter] = composite
                    continue
        if cc == 0:
            starter = len(out)
        last_class = cc
        out.append(c)
    return out


# ----------------------------------------------------------------------------- HF probes
SEP = "\n"


def hf_per_char(normalizer, prefix, cps, sep=SEP):
    """normalizer.normalize_str(prefix + chr(c)) minus the prefix, for every c in cps (but `sep`)."""
    out = {}
    batch = 4000
    cps = [c for c in cps if chr(c) != sep]
    for i in range(0, len(cps), batch):
        part = cps[i:i + batch]
        got = normalizer.normalize_str(sep.join(prefix + chr(c) for c in part)).split(sep)
        if len(got) != len(part):
            raise SystemExit("probe batch split failed (separator changed by the normalizer?)")
        for c, text in zip(part, got):
            if not text.startswith(prefix):
                raise SystemExit("probe lost its prefix at U+%04X: %r" % (c, text))
            out[c] = text[len(prefix):]
    return out


def hf_regex_set(pattern):
    """The code points a one-character regex class matches, through HF's Split pre-tokenizer."""
    split = pre_tokenizers.Split(Regex(pattern), behavior="removed")
    matched = set()
    batch = 4000
    probe = [c for c in SCALARS if c != 0]
    for i in range(0, len(probe), batch):
        part = probe[i:i + batch]
        survivors = set()
        for piece, _ in split.pre_tokenize_str("\x00".join(chr(c) for c in part)):
            survivors.update(ord(ch) for ch in piece)
        matched.update(c for c in part if c not in survivors)
    return matched


def fail(what, differences):
    shown = ", ".join("U+%04X" % c for c in sorted(differences)[:12])
    raise SystemExit("gen_unicode_tables.py: %s disagrees with HF tokenizers at %d code points: %s"
                     % (what, len(differences), shown))


def verify(flags, decomp, ccc, pairs, lower):
    probe = [c for c in SCALARS if chr(c) != SEP]
    print("verifying against tokenizers %s" % tokenizers.__version__)
    for name, pattern, bit in (("\\p{L}", r"\p{L}", LETTER), ("\\p{N}", r"\p{N}", NUMBER),
                               ("\\s", r"\s", WHITE_SPACE)):
        want = {c for c in SCALARS if c != 0 and flags[c] & bit}
        got = hf_regex_set(pattern)
        if got != want:
            fail("regex class " + name, got ^ want)
        print("  regex %-6s %7d code points, identical" % (name, len(got)))

    clean = hf_per_char(normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                                   strip_accents=False, lowercase=False), "a", probe, sep="|")
    probe = [c for c in probe if c != ord("|")]
    removed = {c for c in probe if clean[c] == ""}
    want_removed = {c for c in probe if (c in (0, 0xFFFD) or flags[c] & BERT_CONTROL) and c not in (9, 10, 13)}
    if removed != want_removed:
        fail("BERT clean_text (control)", removed ^ want_removed)
    spaced = {c for c in probe if clean[c] == " " and c != 0x20}
    want_spaced = {c for c in probe if (flags[c] & WHITE_SPACE or c in (9, 10, 13))
                   and c not in want_removed and c != 0x20}
    if spaced != want_spaced:
        fail("BERT clean_text (whitespace)", spaced ^ want_spaced)
    print("  BERT clean_text: %d removed, %d mapped to ' ', identical" % (len(removed), len(spaced)))

    bert = pre_tokenizers.BertPreTokenizer()
    words = [c for c in probe if not flags[c] & WHITE_SPACE and c not in want_removed]
    punct = set()
    batch = 4000
    for i in range(0, len(words), batch):
        part = words[i:i + batch]
        pieces = [p for p, _ in bert.pre_tokenize_str(" ".join("a" + chr(c) + "a" for c in part))]
        k = 0
        for c in part:
            if pieces[k] == "a" + chr(c) + "a":
                k += 1
            else:
                punct.add(c)
                k += 3
    want_punct = {c for c in words if flags[c] & BERT_PUNCTUATION}
    if punct != want_punct:
        fail("BERT punctuation", punct ^ want_punct)
    print("  BERT punctuation: %d code points, identical" % len(punct))

    nfd = hf_per_char(normalizers.NFD(), "x", probe)
    for c in probe:
        want = model_nfd([c], decomp, ccc)
        if nfd[c] != "".join(map(chr, want)):
            fail("NFD of single code points", {c})
    print("  NFD: every scalar alone identical")
    strip = hf_per_char(normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                                   strip_accents=True, lowercase=False), "x", probe)
    for c in probe:
        want = "".join(chr(x) for x in model_nfd([c], decomp, ccc) if not flags[x] & BERT_NONSPACING_MARK)
        if strip[c] != want:
            fail("BERT strip_accents (Mn)", {c})
    print("  BERT strip_accents: every scalar alone identical")

    nfc = hf_per_char(normalizers.NFC(), "|", probe)
    for c in probe:
        if nfc[c] != "".join(map(chr, model_nfc([c], decomp, ccc, pairs))):
            fail("NFC of single code points", {c})
    pair_text = normalizers.NFC().normalize_str(SEP.join(chr(a) + chr(b) for (a, b) in sorted(pairs)))
    for (a, b), got in zip(sorted(pairs), pair_text.split(SEP)):
        if got != chr(pairs[(a, b)]):
            fail("NFC composition pairs", {a})
    print("  NFC: every scalar alone and all %d composition pairs identical" % len(pairs))

    # Canonical ordering: a non-starter moves before U+0345 (ccc 240) iff 0 < ccc < 240, and
    # U+0334 (ccc 1) moves before it iff ccc > 1; together they reveal every non-starter HF knows.
    simple = [c for c in probe if c not in decomp and not is_hangul_syllable(c)]
    before_240 = NFDProbe("x\u0345", "", simple)
    after_1 = NFDProbe("x", "\u0334", simple)
    for c in simple:
        moved1 = before_240[c] == chr(c) + "\u0345"
        moved2 = after_1[c] == "\u0334" + chr(c)
        if (moved1 or moved2) != (ccc.get(c, 0) != 0):
            fail("combining classes", {c})
    print("  combining classes: every non-starter identical")

    low = hf_per_char(normalizers.Lowercase(), "a", probe)
    for c in probe:
        if low[c] != "".join(map(chr, lower.get(c, [c]))):
            fail("lowercase", {c})
    print("  lowercase: every scalar alone identical")


def NFDProbe(prefix, suffix, cps):
    out = {}
    got = normalizers.NFD().normalize_str(SEP.join(prefix + chr(c) + suffix for c in cps)).split(SEP)
    for c, text in zip(cps, got):
        out[c] = text[1:]
    return out


# ----------------------------------------------------------------------------- output
def runs(flags):
    out = []
    prev = None
    for c in range(0x110000):
        f = flags[c] if c < len(flags) else 0
        if f != prev:
            out.append((c, f))
            prev = f
    return out


def emit(path, flags, decomp, ccc, pairs, lower):
    lines = []
    w = lines.append
    w("// Generated by scripts/gen_unicode_tables.py -- do not edit; rerun the script instead.")
    w("// Data: unicodedataplus %s (Unicode %s), str.lower of Python %s (Unicode %s) and, for code points"
      % (getattr(ucd, "__version__", "16.0.0.post1"), ucd.unidata_version, sys.version.split()[0],
         __import__("unicodedata").unidata_version))
    w("// newer than that, HF's Lowercase normalizer. Verified code point by code point against")
    w("// tokenizers %s. Versions per table: see the script's docstring." % tokenizers.__version__)
    w("// Included by src/torch/model/tokenizer_unicode.cpp only.")
    w("")
    w("// Property bits of kPropertyRuns.")
    w("constexpr std::uint8_t kLetter = %d;             // \\p{L}, Unicode 16.0" % LETTER)
    w("constexpr std::uint8_t kNumber = %d;             // \\p{N}, Unicode 16.0" % NUMBER)
    w("constexpr std::uint8_t kWhiteSpace = %d;         // \\s = White_Space, Unicode 16.0" % WHITE_SPACE)
    w("constexpr std::uint8_t kWord = %d;               // \\w of the regex crate, Unicode 16.0" % WORD)
    w("constexpr std::uint8_t kBertControl = %d;       // Cc|Cf|Co, Unicode 8.0" % BERT_CONTROL)
    w("constexpr std::uint8_t kBertPunctuation = %d;   // P* (+ ASCII punctuation), Unicode 8.0" % BERT_PUNCTUATION)
    w("constexpr std::uint8_t kBertNonspacingMark = %d; // Mn, Unicode 8.0" % BERT_NONSPACING_MARK)
    w("")
    w("struct PropertyRun {")
    w("  std::uint32_t first;  // first code point of a run of equal properties")
    w("  std::uint8_t flags;")
    w("};")
    r = runs(flags)
    w("constexpr PropertyRun kPropertyRuns[%d] = {" % len(r))
    row = []
    for c, f in r:
        row.append("{0x%X,%d}" % (c, f))
        if len(row) == 8:
            w("    " + ",".join(row) + ",")
            row = []
    if row:
        w("    " + ",".join(row) + ",")
    w("};")
    w("")
    w("// Canonical combining classes (non-zero), Unicode 9.0, sorted by code point.")
    w("struct CombiningClass {")
    w("  std::uint32_t code_point;")
    w("  std::uint8_t ccc;")
    w("};")
    items = sorted(ccc.items())
    w("constexpr CombiningClass kCombiningClasses[%d] = {" % len(items))
    for i in range(0, len(items), 8):
        w("    " + ",".join("{0x%X,%d}" % kv for kv in items[i:i + 8]) + ",")
    w("};")
    w("")

    def mapping_table(name, comment, mapping):
        pool = []
        entries = []
        for c in sorted(mapping):
            entries.append((c, len(pool), len(mapping[c])))
            pool.extend(mapping[c])
        w("// %s" % comment)
        w("constexpr Mapping k%s[%d] = {" % (name, len(entries)))
        for i in range(0, len(entries), 6):
            w("    " + ",".join("{0x%X,%d,%d}" % e for e in entries[i:i + 6]) + ",")
        w("};")
        w("constexpr char32_t k%sPool[%d] = {" % (name, len(pool)))
        for i in range(0, len(pool), 10):
            w("    " + ",".join("0x%X" % x for x in pool[i:i + 10]) + ",")
        w("};")
        w("")

    w("// A code point's replacement: pool[offset, offset + length).")
    w("struct Mapping {")
    w("  std::uint32_t code_point;")
    w("  std::uint16_t offset;")
    w("  std::uint8_t length;")
    w("};")
    mapping_table("Decompositions", "Full canonical decompositions (Hangul excluded: arithmetic), Unicode 9.0.",
                  decomp)
    mapping_table("Lowercase", "char::to_lowercase of Rust std for every code point it changes.", lower)
    w("// Primary composites, Unicode 9.0, sorted by (first, second).")
    w("struct Composition {")
    w("  std::uint32_t first;")
    w("  std::uint32_t second;")
    w("  std::uint32_t composite;")
    w("};")
    items = sorted(pairs.items())
    w("constexpr Composition kCompositions[%d] = {" % len(items))
    for i in range(0, len(items), 5):
        w("    " + ",".join("{0x%X,0x%X,0x%X}" % (a, b, c) for (a, b), c in items[i:i + 5]) + ",")
    w("};")
    path.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--no-verify", action="store_true", help="skip the HF comparison (not for commits)")
    args = parser.parse_args()
    if ucd.unidata_version != "16.0.0":
        sys.exit("gen_unicode_tables.py: unicodedataplus has Unicode %s, expected 16.0.0" % ucd.unidata_version)

    flags = [property_flags(c) for c in range(0x110000)]
    decomp = {}
    for c in SCALARS:
        d = full_decomposition(c)
        if d is not None:
            decomp[c] = d
    ccc = {c: combining_class(c) for c in SCALARS if combining_class(c) != 0}
    pairs = composition_pairs()

    python_unicode = tuple(int(x) for x in __import__("unicodedata").unidata_version.split(".")[:2])
    lower = {}
    newer = []
    for c in SCALARS:
        if age(c) > python_unicode:
            newer.append(c)
            continue
        low = chr(c).lower()
        if low != chr(c):
            lower[c] = [ord(x) for x in low]
    hf_low = hf_per_char(normalizers.Lowercase(), "a", [c for c in newer if chr(c) != SEP])
    for c, low in hf_low.items():
        if low != chr(c):
            lower[c] = [ord(x) for x in low]

    if not args.no_verify:
        verify(flags, decomp, ccc, pairs, lower)
    emit(args.output, flags, decomp, ccc, pairs, lower)
    print("wrote %s: %d property runs, %d combining classes, %d decompositions, %d compositions, %d lowercase"
          % (args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output,
             len(runs(flags)), len(ccc), len(decomp), len(pairs), len(lower)))


if __name__ == "__main__":
    main()
