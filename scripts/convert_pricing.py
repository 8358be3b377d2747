#!/usr/bin/env python3
"""convert_pricing.py - turn a genai-prices v2 data file into the price table
the `cost` processor ships with.

    scripts/convert_pricing.py [NEW.json] [--text OUT.txt] [--c OUT.c] [--check]

With no argument it converts /work/shared/pricing/genai-prices-data_slim.json
(the file data/pricing/SOURCE names). It writes:

  data/pricing/prices.txt   the converted table, the readable form that is
                            reviewed in diffs and that `pricing_file:` takes;
  llm/prices_table.c        the same bytes as one C string, compiled into the
                            collector, so the shipped table needs no file at
                            run time and cannot go missing from an install.

`--check` writes nothing and fails when the committed outputs differ from
what the input converts to (tests/unit/test_pricing.c also checks that the
two outputs hold the same bytes).

Why a line format of our own rather than the genai-prices JSON itself:
loading it in C is a loop over lines with strtod, no JSON tree (the slim JSON
would cost about 2 MB of jansson nodes and a few milliseconds at every
start); everything that needs care is done once, here, in Python: Python
regexes are translated to POSIX extended regexes (regcomp), match strings are
lower-cased (genai-prices compares them case-insensitively), and only the
price fields the processor uses are kept. Why generated C for the shipped
copy: no install path to resolve, no start-up failure because a data file is
absent, and it is still one table in one format, parsed by one loader.

FORMAT ("rc-prices 1"). UTF-8 text, one record per line, fields separated by
a TAB; a line starting with '#' and an empty line are ignored. Records apply
to the provider or model opened last, so order matters:

  rc-prices<TAB>1                   first record: magic and version
  P<TAB>id<TAB>fallbacks<TAB>api    opens a provider. fallbacks: comma-separated
                                    provider ids whose models it also sells
                                    ("-" for none); api: POSIX ERE matched at the
                                    start of an API URL ("-" for none)
  PM                                the provider's provider_match: one clause
                                    tree follows
  MM                                the provider's model_match: one clause tree
                                    follows
  M<TAB>id                          opens a model of the provider: one clause
                                    tree (its match) follows, then its prices
  $<TAB>when<TAB>in<TAB>out<TAB>cache_read<TAB>cache_write<TAB>requests_kcount
                                    one price set of the model. Several sets
                                    are a dated history in genai-prices order:
                                    the last set whose `when` holds is used,
                                    the first when none holds.

A clause tree is written in prefix order, one node per line:
  or<TAB>N  /  and<TAB>N            followed by N clause trees
  eq / sw / ew / ct<TAB>text        equals / starts_with / ends_with / contains,
                                    text lower-cased, compared with the
                                    lower-cased model or provider name
  re<TAB>ERE                        POSIX extended regex, searched (unanchored
                                    unless it says ^) in the lower-cased name
Text runs to the end of the line; the converter refuses a tab or newline in it.

`when` is "-" (always), "from:YYYY-MM-DD" (request date in UTC on or after),
or "daily:HH:MM:SS-HH:MM:SS" (UTC time of day in [start, end)).
Prices are USD per million tokens (requests_kcount: USD per thousand
requests): "-" when absent, a decimal number, or a tiered price
"base;start:price;start:price..." where the tier with the highest start
below the request's total input tokens prices all tokens of that kind
(genai-prices' threshold model).

Kept from genai-prices: providers (id, provider_match, model_match,
api_pattern, fallback_model_providers), models (id, match, prices), the text
prices input_mtok, output_mtok, cache_read_mtok, cache_write_mtok and
requests_kcount. Dropped: names, descriptions, usage extractors, context
windows, and the audio / image / video / 1-hour-cache / web-search prices,
for which spans carry no token counts.
"""

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_INPUT = "/work/shared/pricing/genai-prices-data_slim.json"
DEFAULT_TEXT = os.path.join(ROOT, "data", "pricing", "prices.txt")
DEFAULT_C = os.path.join(ROOT, "llm", "prices_table.c")
PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
LEAF_OPS = {"equals": "eq", "starts_with": "sw", "ends_with": "ew", "contains": "ct"}


class ConvertError(Exception):
    pass


def plain_text(s, where):
    if not isinstance(s, str) or "\t" in s or "\n" in s or "\r" in s:
        raise ConvertError(f"{where}: expected a string without tabs or newlines, got {s!r}")
    return s


def python_regex_to_ere(rx, where):
    """Translates the Python regex subset genai-prices uses to POSIX ERE.

    Refuses what has no ERE equivalent (look-arounds, backreferences, \\b),
    so a newer data file with such a pattern fails here, loudly, rather than
    matching differently in C."""
    out = []
    i, n = 0, len(rx)
    in_bracket = False
    while i < n:
        c = rx[i]
        if in_bracket:
            if c == "\\" and i + 1 < n:
                e = rx[i + 1]
                # A backslash is literal inside a POSIX bracket expression.
                if e == "d":
                    out.append("0-9")
                elif e == "w":
                    out.append("[:alnum:]_")
                elif e in "./_: ":
                    out.append(e)
                else:
                    raise ConvertError(f"{where}: unsupported escape \\{e} inside [...] in {rx!r}")
                i += 2
                continue
            if c == "]":
                in_bracket = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_bracket = True
            out.append(c)
            i += 1
            if i < n and rx[i] == "^":
                out.append("^")
                i += 1
            if i < n and rx[i] == "]":  # a literal ] first in the set
                out.append("]")
                i += 1
            continue
        if c == "\\":
            if i + 1 >= n:
                raise ConvertError(f"{where}: trailing backslash in {rx!r}")
            e = rx[i + 1]
            if e == "d":
                out.append("[0-9]")
            elif e == "w":
                out.append("[[:alnum:]_]")
            elif e == "s":
                out.append("[[:space:]]")
            elif e in ".^$|?*+()[]{}\\":
                out.append("\\" + e)
            elif e in "/-_:@ ":
                out.append(e)
            else:
                raise ConvertError(f"{where}: unsupported escape \\{e} in {rx!r}")
            i += 2
            continue
        if c == "(":
            if rx.startswith("(?:", i):
                out.append("(")
                i += 3
                continue
            if rx.startswith("(?", i):
                raise ConvertError(f"{where}: unsupported group {rx[i:i + 3]!r} in {rx!r}")
        if c in "*+?}" and i + 1 < n and rx[i + 1] == "?":
            out.append(c)  # lazy and greedy accept the same strings
            i += 2
            continue
        out.append(c)
        i += 1
    if in_bracket:
        raise ConvertError(f"{where}: unterminated [...] in {rx!r}")
    return "".join(out)


def clause_lines(clause, where):
    if not isinstance(clause, dict) or len(clause) != 1:
        raise ConvertError(f"{where}: a match clause must be an object with one key: {clause!r}")
    (op, arg), = clause.items()
    if op in ("or", "and"):
        if not isinstance(arg, list) or not arg:
            raise ConvertError(f"{where}: '{op}' needs a non-empty list")
        lines = [f"{op}\t{len(arg)}"]
        for k, sub in enumerate(arg):
            lines += clause_lines(sub, f"{where}.{op}[{k}]")
        return lines
    if op in LEAF_OPS:
        return [f"{LEAF_OPS[op]}\t{plain_text(arg, where).lower()}"]
    if op == "regex":
        return [f"re\t{python_regex_to_ere(plain_text(arg, where), where)}"]
    raise ConvertError(f"{where}: unknown match clause {op!r}")


def number(v, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ConvertError(f"{where}: expected a price >= 0, got {v!r}")
    return repr(float(v)) if isinstance(v, float) else str(v)


def price_value(v, where):
    if v is None:
        return "-"
    if isinstance(v, dict):
        if set(v) != {"base", "tiers"} or not isinstance(v["tiers"], list):
            raise ConvertError(f"{where}: a tiered price has exactly 'base' and 'tiers'")
        parts = [number(v["base"], where + ".base")]
        tiers = sorted(v["tiers"], key=lambda t: t["start"])
        for k, t in enumerate(tiers):
            start = t.get("start")
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise ConvertError(f"{where}.tiers[{k}]: start must be an integer >= 0")
            parts.append(f"{start}:{number(t.get('price'), f'{where}.tiers[{k}].price')}")
        return ";".join(parts)
    return number(v, where)


def constraint_text(c, where):
    if c is None:
        return "-"
    if set(c) == {"start_date"}:
        d = c["start_date"]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(d)):
            raise ConvertError(f"{where}: start_date {d!r} is not YYYY-MM-DD")
        return f"from:{d}"
    if set(c) == {"start_time", "end_time"}:
        times = []
        for key in ("start_time", "end_time"):
            t = str(c[key])
            m = re.fullmatch(r"(\d{2}:\d{2}:\d{2})(Z|\+00:00)?", t)
            if not m:
                raise ConvertError(f"{where}: {key} {t!r} is not HH:MM:SS in UTC")
            times.append(m.group(1))
        return f"daily:{times[0]}-{times[1]}"
    raise ConvertError(f"{where}: unknown price constraint {c!r}")


def price_line(when, prices, where):
    if not isinstance(prices, dict):
        raise ConvertError(f"{where}: prices must be an object")
    fields = [price_value(prices.get(f), f"{where}.{f}") for f in PRICE_FIELDS]
    req = prices.get("requests_kcount")
    fields.append("-" if req is None else number(req, f"{where}.requests_kcount"))
    return "\t".join(["$", when] + fields)


def model_lines(model, where):
    mid = plain_text(model.get("id"), where + ".id")
    lines = [f"M\t{mid}"] + clause_lines(model.get("match"), f"{where}({mid}).match")
    prices = model.get("prices")
    if isinstance(prices, list):
        if not prices:
            raise ConvertError(f"{where}({mid}): empty price list")
        for k, cp in enumerate(prices):
            w = f"{where}({mid}).prices[{k}]"
            lines.append(price_line(constraint_text(cp.get("constraint"), w), cp.get("prices"), w))
    else:
        lines.append(price_line("-", prices, f"{where}({mid}).prices"))
    return lines


def provider_lines(p, where):
    pid = plain_text(p.get("id"), where + ".id")
    where = f"{where}({pid})"
    fallbacks = p.get("fallback_model_providers") or []
    for f in fallbacks:
        if "," in plain_text(f, where + ".fallback_model_providers"):
            raise ConvertError(f"{where}: a provider id may not contain ','")
    api = p.get("api_pattern")
    api_ere = "-" if not api else "^" + python_regex_to_ere(plain_text(api, where), where)
    lines = [f"P\t{pid}\t{','.join(fallbacks) or '-'}\t{api_ere}"]
    if p.get("provider_match") is not None:
        lines += ["PM"] + clause_lines(p["provider_match"], where + ".provider_match")
    if p.get("model_match") is not None:
        lines += ["MM"] + clause_lines(p["model_match"], where + ".model_match")
    for k, m in enumerate(p.get("models") or []):
        lines += model_lines(m, f"{where}.models[{k}]")
    return lines


def convert(data, source_note):
    if not isinstance(data, list):
        raise ConvertError("the top level must be a list of providers (genai-prices v2)")
    ids = [p.get("id") for p in data]
    lines = [
        "rc-prices\t1",
        "# Converted by scripts/convert_pricing.py; do not edit by hand.",
        f"# Source: {source_note}",
        "# Prices: USD per million tokens. Format: see the script's header.",
    ]
    for k, p in enumerate(data):
        for f in p.get("fallback_model_providers") or []:
            if f not in ids:
                raise ConvertError(f"providers[{k}]: fallback provider {f!r} is not in the file")
        lines += provider_lines(p, f"providers[{k}]")
    return "\n".join(lines) + "\n"


def c_source(text):
    out = [
        "/*",
        " * prices_table.c - the shipped price table, GENERATED by",
        " * scripts/convert_pricing.py from the genai-prices data named in",
        " * data/pricing/SOURCE (MIT, see data/pricing/LICENSE-genai-prices). Do not",
        " * edit: regenerate. The bytes equal data/pricing/prices.txt, whose format",
        " * the script describes; llm/pricing.c parses them at start-up.",
        " */",
        '#include "llm/pricing.h"',
        "",
        "// clang-format off",
        "const char rc_pricing_builtin_text[] =",
    ]
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
        esc = esc.replace("\n", "\\n")
        out.append(f'    "{esc}"')
    out[-1] += ";"
    out += [
        "const size_t rc_pricing_builtin_len = sizeof rc_pricing_builtin_text - 1;",
        "// clang-format on",
        "",
    ]
    return "\n".join(out)


def source_note_for(path):
    src = os.path.join(ROOT, "data", "pricing", "SOURCE")
    if os.path.abspath(path) == os.path.abspath(DEFAULT_INPUT) and os.path.exists(src):
        with open(src, encoding="utf-8") as f:
            note = " ".join(f.read().split())
            return note[len("source:"):].strip() if note.startswith("source:") else note
    return os.path.basename(path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", nargs="?", default=DEFAULT_INPUT, help="genai-prices v2 JSON")
    ap.add_argument("--text", default=DEFAULT_TEXT, help="where the table goes")
    ap.add_argument("--c", default=DEFAULT_C, help="where the generated C goes ('-': none)")
    ap.add_argument("--note", help="source note for the header (default: data/pricing/SOURCE)")
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    try:
        with open(args.input, encoding="utf-8") as f:
            data = json.load(f)
        text = convert(data, args.note or source_note_for(args.input))
    except (OSError, ValueError, ConvertError) as e:
        print(f"convert_pricing: {args.input}: {e}", file=sys.stderr)
        return 1
    outputs = [(args.text, text)]
    if args.c != "-":
        outputs.append((args.c, c_source(text)))
    status = 0
    for path, content in outputs:
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == content
            except OSError:
                same = False
            if not same:
                print(f"convert_pricing: {path} is not what {args.input} converts to", file=sys.stderr)
                status = 1
            continue
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        print(f"convert_pricing: wrote {path} ({len(content)} bytes)")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
