"""Generate the event catalog (markdown) from the Avro schemas in ``schemas/``.

    python scripts/event_catalog.py            # rewrite the catalog section of README.md
    python scripts/event_catalog.py --check    # exit 1 when README.md is out of date

The section sits between ``<!-- event-catalog:start -->`` and
``<!-- event-catalog:end -->``; a unit test runs ``--check``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas import avro_type_text, load_catalog

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- event-catalog:start -->"
END = "<!-- event-catalog:end -->"


def catalog_markdown() -> str:
    lines: list[str] = []
    for spec in sorted(load_catalog(), key=lambda s: (s.topic, s.full_name)):
        lines.append(f"#### {spec.name}")
        lines.append("")
        lines.append(
            f"{spec.schema.get('doc', '')}  \n"
            f"Topic `{spec.topic}`, key `{spec.key_field}`, subject `{spec.subject()}`."
        )
        lines.append("")
        lines.append("| field | type | meaning |")
        lines.append("| --- | --- | --- |")
        for field in spec.schema["fields"]:
            lines.append(
                f"| `{field['name']}` | {avro_type_text(field['type'])} | {field.get('doc', '')} |"
            )
            if isinstance(field["type"], dict) and field["type"].get("type") == "array":
                items = field["type"]["items"]
                if isinstance(items, dict) and items.get("type") == "record":
                    for sub in items["fields"]:
                        lines.append(
                            f"| `{field['name']}[].{sub['name']}` | {avro_type_text(sub['type'])} "
                            f"| {sub.get('doc', '')} |"
                        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(readme: str) -> str:
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"README.md has no {START} ... {END} section")
    return f"{head}{START}\n\n{catalog_markdown()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if current != wanted:
            print("README.md event catalog is stale: run python scripts/event_catalog.py")
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
