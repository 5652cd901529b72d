"""docs/ledger.md carries the posting-rule table and the period diagram generated from the code.

Regenerate with: .venv/bin/python -m tests.unit.ledger.test_docs
"""

from __future__ import annotations

import re
from pathlib import Path

from entrepot.ledger.posting import rules_markdown
from entrepot.ledger.states import PERIOD

DOC = Path(__file__).resolve().parents[3] / "docs" / "ledger.md"
SECTIONS = {
    "posting-rules": rules_markdown,
    "period-states": lambda: "```mermaid\n" + PERIOD.mermaid() + "```\n",
}


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        assert pattern.search(text), f"docs/ledger.md lacks the {name} markers"
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
    return text


def test_generated_sections_match_the_code():
    text = DOC.read_text()
    assert text == render(text), "docs/ledger.md drifted; run: .venv/bin/python -m tests.unit.ledger.test_docs"


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
