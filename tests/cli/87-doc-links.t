#!/usr/bin/env bash
# The documents' links go somewhere: every relative link in README.md,
# docs/*.md, bench/README.md and each migration's README.md names a file
# or folder of the repository, and every #anchor one of that file's
# headings (GitHub's way of making an anchor of a heading: lower case,
# punctuation but - and _ dropped, blanks made -).  The reference moved
# out of README.md into docs/cli.md: a link left pointing at the old place
# fails here.  No database.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"

cd "$REPO_ROOT" || exit 1
out=$(python3 - README.md docs/*.md bench/README.md migrations/*/README.md <<'PY'
import os, re, sys

sys.dont_write_bytecode = True    # (no __pycache__ in tests/lib)
sys.path.insert(0, "tests/lib")
from anchors import anchors

bad = []
for doc in sys.argv[1:]:
    text = re.sub(r"^```.*?^```$", "", open(doc, encoding="utf-8").read(), flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(file):
            bad.append("%s: %s: no such file" % (doc, target))
        elif anchor and (os.path.isdir(file) or anchor not in anchors(file)):
            bad.append("%s: %s: no such heading" % (doc, target))
print("\n".join(bad))
PY
)
is "$out" "" "every relative link of the documents names a file, and every #anchor a heading of it"
links=$(grep -c '](docs/cli.md' README.md)
ok "$([ "$links" -ge 5 ] && echo 0 || echo 1)" "README.md links to docs/cli.md for the details ($links links)"
done_testing
