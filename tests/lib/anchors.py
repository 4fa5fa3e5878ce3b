# anchors(path) -> the set of #anchors the headings of the Markdown file
# at path make, GitHub's way: lower case, punctuation but - and _ dropped,
# blanks made -, a repeated one suffixed -1, -2 ...; headings inside fenced
# code are none.  For the tests that check the documents' links (cli/87)
# and the help texts' "more:" pointers (cli/94).
import re


def anchors(path):
    seen, out = {}, set()
    text = re.sub(r"^```.*?^```$", "", open(path, encoding="utf-8").read(), flags=re.M | re.S)
    for h in re.findall(r"^#{1,6} (.*)$", text, re.M):
        a = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        n = seen.get(a, 0)
        seen[a] = n + 1
        out.add(a if n == 0 else "%s-%d" % (a, n))
    return out
