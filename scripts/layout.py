"""Print the project's layout, read from the code: the layers of lib/ from the bottom up, each
package with its modules, and which lesson each page draws. `make layout` writes it into the
README between its layout markers; tests/test_structure.py checks that they match.

    .venv/bin/python scripts/layout.py              # print it
    .venv/bin/python scripts/layout.py --readme README.md
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- layout:start -->", "<!-- layout:end -->"
LAYERS = [
    ("lib/core/", "imports nothing above it"),
    ("lib/dataset/", "imports the core"),
    ("lib/harness/", "imports the dataset and the core"),
    ("lib/ui/", "Streamlit; imports the layers below"),
    ("lib/lessons/", "one package per lesson; never imports another lesson"),
]


def summary(path: Path) -> str:
    """The first sentence of a module's docstring (up to its first period or colon)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?[.:])(\s|$)", first)
    return (match.group(1) if match else first).rstrip(".:")


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


def package_line(folder: Path) -> str:
    names = [p.stem for p in modules(folder)]
    names += [f"{p.name}/" for p in sorted(folder.iterdir()) if (p / "__init__.py").exists()]
    return ", ".join(names)


def layout() -> str:
    out = ["```"]
    commands = ", ".join(f"lib/{p.name}" for p in modules(ROOT / "lib"))
    out.append(f"pages/*.py, streamlit_app.py          {commands}")
    out.append("  (a page: its lesson + the UI)          (command lines: python -m lib.X)")
    out.append("            │                                      │")
    for folder, rule in reversed(LAYERS):
        path = ROOT / folder
        if folder == "lib/lessons/":
            lessons = [p.name for p in sorted(path.iterdir()) if (p / "__init__.py").exists()]
            out.append(f"{folder:<15} {', '.join(lessons)}")
        else:
            out.append(f"{folder:<15} {package_line(path)}")
        out.append(f"{'':15} ({rule})")
        if folder != "lib/core/":
            out.append("            │")
    out.append("```")
    out.append("")
    out.append("| module | what it is for |")
    out.append("| --- | --- |")
    for folder, _ in LAYERS:
        base = ROOT / folder
        folders = [base]
        if folder == "lib/lessons/":
            folders = [p for p in sorted(base.iterdir()) if (p / "__init__.py").exists()]
        for f in folders:
            for p in modules(f) + [
                m for sub in sorted(f.iterdir()) if (sub / "__init__.py").exists() and
                f.name != "lessons" for m in modules(sub)
            ]:  # fmt: skip
                out.append(f"| `{p.relative_to(ROOT)}` | {summary(p)} |")
    for p in sorted((ROOT / "lib").glob("*.py")):
        if p.name != "__init__.py":
            out.append(f"| `{p.relative_to(ROOT)}` | {summary(p)} |")
    for p in sorted((ROOT / "pages").glob("*.py")):
        lesson = sorted(set(re.findall(r"from lib\.lessons\.(\w+)", p.read_text())))
        out.append(f"| `{p.relative_to(ROOT)}` | the page of lesson `{', '.join(lesson)}` |")
    return "\n".join(out)


def write_readme(readme: Path) -> None:
    text = readme.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    readme.write_text(text[:start] + "\n" + layout() + "\n" + text[end:])


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--readme", type=Path, help="write it into this README's layout section")
    args = ap.parse_args()
    if args.readme:
        write_readme(args.readme)
    else:
        print(layout())
    return 0


if __name__ == "__main__":
    sys.exit(main())
