"""The canonical layout of a `layout.Document`.

Rules (docs/editors.md, "policyc fmt"):
* two-space indentation; one entry per line with a trailing comma when a
  container is written over several lines;
* a container nested below the top-level sections is kept on one line when it
  holds no comments and fits in `WIDTH` columns (`["a", "b"]`,
  `{"action": "accept", "src": [...], "dst": [...]}`); the whole document and
  each top-level section are always one entry per line;
* comments stay where they were: before an entry, after it on its line,
  after an opening bracket, before a closing one; one blank line between
  entries is kept where the source had one or more;
* the file ends with exactly one newline.
"""

from __future__ import annotations

from policyc.fmt.layout import Comment, Document, Entry, Node, Scalar

INDENT = "  "
WIDTH = 100
# Depths 0 (the document) and 1 (a top-level section) are always expanded.
_FIRST_INLINE_DEPTH = 2


def render(doc: Document) -> str:
    lines: list[str] = []
    _comment_lines(doc.leading, 0, lines, first=True)
    if doc.value is not None:
        if lines and doc.blank_before_value:
            lines.append("")
        _Writer(lines).value_lines(doc.value, "", 0)
        if doc.same_line:
            lines[-1] += " " + " ".join(c.text for c in doc.same_line)
        _comment_lines(doc.trailing, 0, lines, first=False)
    return "\n".join(lines) + "\n" if lines else ""


def _comment_lines(comments: list[Comment], depth: int, lines: list[str], *,
                   first: bool) -> None:
    for index, comment in enumerate(comments):
        if comment.blank_before and not (first and index == 0) and lines:
            lines.append("")
        lines.append(INDENT * depth + comment.text)


class _Writer:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def value_lines(self, node: Node, prefix: str, depth: int) -> None:
        """Append `node`, its first line starting with `prefix`, at `depth`."""
        if isinstance(node, Scalar):
            self.lines.append(prefix + node.text)
            return
        if depth >= _FIRST_INLINE_DEPTH or not node.entries:
            flat = _flat(node)
            if flat is not None and len(prefix) + len(flat) + 1 <= WIDTH:
                self.lines.append(prefix + flat)
                return
        head = prefix + node.open
        if node.after_open:
            head += " " + " ".join(c.text for c in node.after_open)
        self.lines.append(head)
        for index, entry in enumerate(node.entries):
            self.entry_lines(entry, depth + 1, first=index == 0)
        if node.before_close:
            if node.entries and node.before_close[0].blank_before:
                self.lines.append("")
            _comment_lines(node.before_close, depth + 1, self.lines, first=True)
        self.lines.append(INDENT * depth + node.close)

    def entry_lines(self, entry: Entry, depth: int, *, first: bool) -> None:
        indent = INDENT * depth
        if entry.leading:
            if not first and entry.leading[0].blank_before:
                self.lines.append("")
            _comment_lines(entry.leading, depth, self.lines, first=True)
            if entry.blank_before:
                self.lines.append("")
        elif entry.blank_before and not first:
            self.lines.append("")
        prefix = indent if entry.key is None else f"{indent}{entry.key}: "
        value_depth = depth
        for comment in entry.between:
            if comment.is_line:
                self.lines.append(prefix + comment.text)
                value_depth = depth + 1
                prefix = INDENT * value_depth
            else:
                prefix += comment.text + " "
        self.value_lines(entry.value, prefix, value_depth)
        self.lines[-1] += ","
        if entry.trailing:
            self.lines[-1] += " " + " ".join(c.text for c in entry.trailing)


def _flat(node: Node) -> str | None:
    """`node` on one line, or None when it holds a comment."""
    if isinstance(node, Scalar):
        return node.text
    if node.has_comments():
        return None
    parts = []
    for entry in node.entries:
        value = _flat(entry.value)
        if value is None:
            return None
        parts.append(value if entry.key is None else f"{entry.key}: {value}")
    return node.open + ", ".join(parts) + node.close
