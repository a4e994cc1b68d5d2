#!/usr/bin/env python3
"""Checks that every documentation citation in the repository resolves inside it.

Run by scripts/test.sh right after the formatting step; no dependencies beyond Python 3.8.
It reads every text file git knows of (tracked, or new and not ignored), except the vendored
Twilio specs in reference/, and fails when:

  * a reference to a markdown file (`docs/protocol/rest-api.md`, `[text](../README.md)`,
    `BENCHMARKS.md`) names no file of the repository: relative paths resolve from the citing
    file's folder, then from the repository root; a bare file name may sit anywhere;
  * its `#anchor` is not the GitHub anchor of a heading of that file;
  * a quoted heading after a file (`docs/ARCHITECTURE.md, "Keyset paging"`, `README, "Rate
    limits"`) begins no heading of that file, nor the bold label opening one of its list items
    (leading numbers like `3.` and backticks ignored);
  * a file cites the protocol notes that live outside the repository (their file names, a `§`
    section sign, a path into a shared reference folder): docs/protocol/ holds those facts now.

    scripts/check-docs.py              check the working tree
    scripts/check-docs.py --self-test  prove on a scratch repository that each rule fires
"""

import os
import re
import subprocess
import sys
import tempfile
import unicodedata

# Vendored data (Twilio's OpenAPI specs), not ours to cite from.
SKIP_PREFIXES = ("reference/",)
# Names of the notes kept outside the repository. Spelled in pieces so this file passes itself.
FORBIDDEN = [
    ("REST-API" + ".md", "cites notes outside the repository: use docs/protocol/rest-api.md"),
    ("DEVICE-PROTOCOL" + ".md", "cites notes outside the repository: use docs/protocol/device-protocol.md"),
    ("DEPENDENCIES" + ".md", "cites notes outside the repository: use docs/ARCHITECTURE.md, \"Decisions\""),
    ("\u00a7", "a bare section sign cites a numbered section: name a heading (file.md#anchor)"),
    ("shared/" + "reference", "a path outside the repository"),
]

MD_REF = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*(?:[\w.-]+/)*[\w.-]+\.md)(?![\w])(#[\w-]+)?")
QUOTED_HEADING = re.compile(r"^[,:]?\s?\"([^\"\n]{1,80})\"")
README_HEADING = re.compile(r"(?<![\w/.-])README,? \"([^\"\n]{1,80})\"")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# A named entry of a list, like docs/ARCHITECTURE.md's "- **Keyset paging.** …": quotable too.
BOLD_LABEL = re.compile(r"^\s*[-*] \*\*([^*\n]{1,80})\*\*", re.M)
FENCE = re.compile(r"^\s*(```|~~~)")


def repo_files(root):
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode()
    return sorted({p for p in out.split("\0") if p and not p.startswith(SKIP_PREFIXES)})


def read_text(root, rel):
    try:
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
    except (IsADirectoryError, FileNotFoundError):
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slug(text):
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    kept = []
    for ch in text:
        if ch in " -_" or unicodedata.category(ch)[0] in "LN":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def headings(text):
    """The headings of a markdown text (outside code fences), in order."""
    found, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            found.append(m.group(2))
    return found


def anchors(text):
    seen, result = {}, set()
    for h in headings(text):
        base = slug(h)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def plain(heading):
    heading = heading.replace("`", "").replace("*", "").strip()
    return re.sub(r"^\d+(\.\d+)*\.?\s+", "", heading).lower()


def resolve(root, citing, target, files_by_name, strict):
    """The repository path a citation names, or None. A markdown link (`strict`) resolves from
    the citing file's folder only, as GitHub resolves it."""
    here = os.path.dirname(citing)
    candidates = [os.path.normpath(os.path.join(here, target))]
    if strict:
        c = candidates[0]
        return c if not c.startswith("..") and os.path.isfile(os.path.join(root, c)) else None
    if not target.startswith("."):
        candidates.append(os.path.normpath(target))
    for c in candidates:
        if not c.startswith("..") and os.path.isfile(os.path.join(root, c)):
            return c
    if "/" not in target and len(files_by_name.get(target, ())) >= 1:
        return files_by_name[target][0]
    return None


def check(root):
    files = repo_files(root)
    files_by_name = {}
    for f in files:
        files_by_name.setdefault(os.path.basename(f), []).append(f)
    cache = {}

    def doc(path):
        if path not in cache:
            text = read_text(root, path) or ""
            names = headings(text) + BOLD_LABEL.findall(text)
            cache[path] = (anchors(text), [plain(h) for h in names])
        return cache[path]

    def heading_ok(path, quoted):
        want = plain(quoted)
        return any(h.startswith(want) for h in doc(path)[1])

    errors = []
    this = os.path.relpath(os.path.abspath(__file__), root)
    for rel in files:
        text = read_text(root, rel)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{lineno}"
            if rel != this:
                for needle, why in FORBIDDEN:
                    if needle in line:
                        errors.append(f"{where}: {needle!r}: {why}")
            for m in MD_REF.finditer(line):
                target, anchor = m.group(1), m.group(2)
                if rel == this or "://" in re.split(r"\s", line[:m.start()])[-1]:
                    continue  # part of a URL: a page elsewhere
                if any(needle in target for needle, _ in FORBIDDEN):
                    continue  # reported above
                link = line[:m.start()].endswith("](")
                path = resolve(root, rel, target, files_by_name, strict=link)
                if path is None:
                    errors.append(f"{where}: {target}: no such file in the repository")
                    continue
                if anchor and anchor[1:] not in doc(path)[0]:
                    errors.append(f"{where}: {target}{anchor}: no heading with that anchor in {path}")
                q = QUOTED_HEADING.match(line[m.end():])
                if q and not anchor and not heading_ok(path, q.group(1)):
                    errors.append(f"{where}: {target}, \"{q.group(1)}\": no such heading in {path}")
            for m in README_HEADING.finditer(line):
                if rel != this and not heading_ok("README.md", m.group(1)):
                    errors.append(f"{where}: README, \"{m.group(1)}\": no such heading in README.md")
    return errors


def self_test():
    """Each rule must fire on a broken citation and stay quiet on a sound one."""
    with tempfile.TemporaryDirectory() as root:
        def write(rel, text):
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)

        subprocess.run(["git", "init", "-q", root], check=True)
        write("README.md", "# Top\n\n## Rate limits\n\n```\n# not a heading\n```\n")
        write("docs/a.md", "# A\n\n## Factor JWT\n\n### 3. What bounds the `figures`\n\n"
                           "- **Keyset paging.** Every list …\n\nSee [top](../README.md#rate-limits).\n")
        write("src/ok.rs", "//! docs/a.md#factor-jwt, docs/a.md, \"What bounds\", README, \"Rate limits\"\n"
                           "//! docs/a.md, \"Keyset paging\"\n"
                           "// https://example.com/elsewhere.md is a page elsewhere\n")
        if check(root):
            print("self-test: sound citations were refused:", *check(root), sep="\n  ")
            return 1
        broken = {
            "src/b1.rs": "// docs/missing.md\n",
            "src/b2.rs": "// docs/a.md#no-such-heading\n",
            "src/b3.rs": "// docs/a.md, \"No such heading\"\n",
            "src/b4.rs": "// README, \"Not a heading\"\n",
            "src/b5.rs": "// DEVICE-PROTOCOL" + ".md\n",
            "src/b6.rs": "// see \u00a74\n",
            "docs/b7.md": "[x](a.md#not-here)\n",
            "docs/b8.md": "[x](README.md)\n",  # relative to docs/: no such file there
        }
        failed = 0
        for rel, text in broken.items():
            write(rel, text)
            errors = check(root)
            if not any(e.startswith(rel + ":") for e in errors):
                print(f"self-test: {rel} ({text.strip()!r}) was not caught")
                failed = 1
            os.remove(os.path.join(root, rel))
        print("self-test: every rule fires" if not failed else "self-test: FAILED")
        return failed


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True,
                          capture_output=True, text=True).stdout.strip()
    errors = check(root)
    for e in errors:
        print(e)
    if errors:
        print(f"check-docs: {len(errors)} citation(s) do not resolve inside the repository", file=sys.stderr)
        return 1
    print("check-docs: every citation resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
