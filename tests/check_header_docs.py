#!/usr/bin/env python3
"""The public header is the specification: every declaration documents itself.

    check_header_docs.py include/nnlib.h

Fails (exit 1, one line per problem) when
  - an NNLIB_API declaration has no comment of its own: the lines right
    above it (past an NNLIB_DEPRECATED(...) line) must end a /* ... */
    comment that starts on a line of its own, so a comment shared by a
    group of declarations covers only the first;
  - the comment of a function returning nnlib_status names no status
    (an NNLIB_ERR_... code, or "always returns NNLIB_OK");
  - a comment names a status the enum does not have, or abbreviates one
    ("_TRUNCATED" for NNLIB_ERR_TRUNCATED);
  - NNLIB_DEPRECATED("use X...") names no declared function X;
  - an option struct's *_options_init is not the macro over a declared
    *_options_init_size that passes the caller's sizeof (issue 15, item 9).
Before checking the header it checks itself on small broken headers, so a
checker that accepts everything fails too.
"""
import re
import sys

DECL_START = re.compile(r"^NNLIB_API\s")
DEPRECATED_LINE = re.compile(r'^NNLIB_DEPRECATED\("([^"]*)"\)\s*$')
FUNC_NAME = re.compile(r"\b(nnlib_\w+)\s*\(")
STATUS = re.compile(r"\bNNLIB_ERR_[A-Z_]+\b")
SHORTHAND = re.compile(r"(?:^|[\s,(])(_(?:[A-Z]{2,}_?)+)\b")
ALWAYS_OK = re.compile(r"always\s+returns\s+NNLIB_OK", re.I)


def enum_statuses(text):
    body = re.search(r"typedef enum nnlib_status \{(.*?)\}", text, re.S)
    return set(re.findall(r"\b(NNLIB_ERR_[A-Z_]+)\s*=", body.group(1)))


def declarations(lines):
    """(line index, name, result type, full text) of each NNLIB_API decl."""
    out = []
    for i, line in enumerate(lines):
        if not DECL_START.match(line):
            continue
        j, text = i, line
        while ";" not in text:
            j += 1
            text += " " + lines[j].strip()
        head = text[: text.index(";")]
        name = FUNC_NAME.search(head)
        if name is None:
            continue
        result = head[len("NNLIB_API"): name.start()].strip()
        out.append((i, name.group(1), result, head))
    return out


def own_comment(lines, i):
    """The comment right above line i (past NNLIB_DEPRECATED), or None."""
    k = i - 1
    while k >= 0 and DEPRECATED_LINE.match(lines[k].strip()):
        k -= 1
    if k < 0 or not lines[k].rstrip().endswith("*/"):
        return None
    end = k
    while k >= 0 and "/*" not in lines[k]:
        k -= 1
    if k < 0 or not lines[k].lstrip().startswith("/*"):
        return None  # a trailing comment of code, not a comment of its own
    # one line of prose: the " * " that continues a comment line is a space
    return re.sub(r"\n\s*\*(?!/)\s?", " ", "\n".join(lines[k: end + 1]))


def check(text):
    problems = []
    lines = text.split("\n")
    known = enum_statuses(text)
    decls = declarations(lines)
    declared = {name for _, name, _, _ in decls}
    for i, name, result, _ in decls:
        where = "line %d: %s" % (i + 1, name)
        comment = own_comment(lines, i)
        if comment is None:
            problems.append("%s has no comment of its own" % where)
            continue
        if result == "nnlib_status" and not (STATUS.search(comment) or
                                              ALWAYS_OK.search(comment)):
            problems.append("%s returns nnlib_status but its comment names "
                            "no status (NNLIB_ERR_...)" % where)
    for n, line in enumerate(lines, 1):
        for status in STATUS.findall(line):
            if status not in known:
                problems.append("line %d: %s is not a status" % (n, status))
        if "/*" in line or line.lstrip().startswith("*"):
            for short in SHORTHAND.findall(line):
                if "NNLIB_ERR" + short in known:
                    problems.append("line %d: write NNLIB_ERR%s in full"
                                    % (n, short))
        m = DEPRECATED_LINE.match(line.strip())
        if m:
            target = re.match(r"use (nnlib_\w+)", m.group(1))
            if target is None or target.group(1) not in declared:
                problems.append("line %d: NNLIB_DEPRECATED(\"%s\") names no "
                                "declared replacement" % (n, m.group(1)))
    problems += check_option_inits(text, declared)
    return problems, len(decls), sum(r == "nnlib_status" for _, _, r, _ in decls)


def check_option_inits(text, declared):
    problems = []
    for init in sorted(n for n in declared if n.endswith("_options_init")):
        sized = init + "_size"
        if sized not in declared:
            problems.append("%s has no %s" % (init, sized))
            continue
        macro = re.search(r"#define %s\((\w+)(?:, (\w+))?\)\s*\\?\s*%s\(([^;]*?)\)\s*$"
                          % (init, sized), text, re.M)
        if macro is None:
            problems.append("%s is not a macro over %s" % (init, sized))
            continue
        arg = macro.group(1)
        if not macro.group(3).rstrip().endswith("sizeof *(%s)" % arg):
            problems.append("the %s macro does not pass sizeof *(%s)"
                            % (init, arg))
    return problems


SELF_TESTS = {
    "a declaration without a comment":
        "NNLIB_API void nnlib_a(void);",
    "a status function whose comment names no status":
        "/* Does a. */\nNNLIB_API nnlib_status nnlib_a(void);",
    "the second of a group under one comment":
        "/* Count and index. NNLIB_ERR_OUT_OF_RANGE. */\n"
        "NNLIB_API size_t nnlib_a(void);\n"
        "NNLIB_API nnlib_status nnlib_b(size_t i);",
    "a status that does not exist":
        "/* NNLIB_ERR_NO_SUCH. */\nNNLIB_API nnlib_status nnlib_a(void);",
    "a shorthand status":
        "/* NNLIB_ERR_IO, _TRUNCATED. */\nNNLIB_API nnlib_status nnlib_a(void);",
    "a deprecation naming nothing declared":
        "/* Old. NNLIB_ERR_IO. */\nNNLIB_DEPRECATED(\"use nnlib_b\")\n"
        "NNLIB_API nnlib_status nnlib_a(void);",
    "an options init that is not the sizeof macro":
        "/* Init. NNLIB_ERR_STRUCT_SIZE. */\n"
        "NNLIB_API nnlib_status nnlib_x_options_init_size(x *o, size_t s);\n"
        "/* Init. NNLIB_ERR_INVALID_ARGUMENT. */\n"
        "NNLIB_API nnlib_status nnlib_x_options_init(x *o);",
}
ENUM = ("typedef enum nnlib_status {\n  NNLIB_OK = 0,\n"
        "  NNLIB_ERR_IO = -8,\n  NNLIB_ERR_TRUNCATED = -14,\n"
        "  NNLIB_ERR_OUT_OF_RANGE = -16,\n  NNLIB_ERR_STRUCT_SIZE = -6,\n"
        "  NNLIB_ERR_INVALID_ARGUMENT = -1\n} nnlib_status;\n")
GOOD = ("/* Does a. NNLIB_ERR_IO when it cannot. */\n"
        "NNLIB_API nnlib_status nnlib_a(void);\n"
        "/* Old name of a. NNLIB_ERR_IO. */\nNNLIB_DEPRECATED(\"use nnlib_a\")\n"
        "NNLIB_API nnlib_status nnlib_old_a(void);\n"
        "/* Init. NNLIB_ERR_STRUCT_SIZE. */\n"
        "NNLIB_API nnlib_status nnlib_x_options_init_size(x *o, size_t s);\n"
        "/* Init. NNLIB_ERR_INVALID_ARGUMENT. */\n"
        "NNLIB_API nnlib_status nnlib_x_options_init(x *o);\n"
        "#define nnlib_x_options_init(options) \\\n"
        "  nnlib_x_options_init_size((options), sizeof *(options))\n"
        "/* Sets n; always returns NNLIB_OK. */\n"
        "NNLIB_API nnlib_status nnlib_n(int n);\n")


def self_test():
    failures = []
    if check(ENUM + GOOD)[0]:
        failures.append("a correct header is refused: %s" % check(ENUM + GOOD)[0])
    for what, snippet in SELF_TESTS.items():
        if not check(ENUM + snippet)[0]:
            failures.append("not caught: " + what)
    return failures


def main():
    failures = self_test()
    if failures:
        print("check_header_docs.py is broken:\n  " + "\n  ".join(failures))
        return 1
    with open(sys.argv[1]) as f:
        problems, count, with_status = check(f.read())
    if count < 100:
        problems.append("only %d NNLIB_API declarations parsed" % count)
    for p in problems:
        print("%s: %s" % (sys.argv[1], p))
    if problems:
        return 1
    print("ok: %d public declarations, each with its own comment; the %d "
          "returning nnlib_status name their statuses" % (count, with_status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
