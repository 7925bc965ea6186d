"""Regenerate the key tables of docs/configuration.md from the pydantic Field descriptions.

Usage: ``python tools/gen_config_docs.py`` (``--check``: exit 1 if the file is out of date).
Each table sits between ``<!-- BEGIN GENERATED: Name -->`` and ``<!-- END GENERATED: Name -->``,
``Name`` a key of :data:`geoseg.config.DOC_TABLES`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from geoseg.config import DOC_TABLES, markdown_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)


def render(text: str) -> str:
    """``text`` with every generated block replaced by the current table; unknown names are an error."""

    def table(m: re.Match) -> str:
        name = m[2]
        if name not in DOC_TABLES:
            raise SystemExit(f"{DOC}: no config model {name!r} in geoseg.config.DOC_TABLES")
        model, prefix = DOC_TABLES[name]
        return m[1] + markdown_table(model, prefix) + m[4]

    return BLOCK.sub(table, text)


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = render(text)
    missing = set(DOC_TABLES) - set(m[2] for m in BLOCK.finditer(text))
    if missing:
        print(f"{DOC}: no table for {sorted(missing)}; add marker pairs", file=sys.stderr)
        return 1
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is out of date: run python tools/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
