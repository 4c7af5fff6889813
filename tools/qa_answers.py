"""Dump (or compare) the dog Q&A answers to every question of the Q&A fixtures and of the
dog tests, each asked as written, in English and in Chinese: a refactor of `dogs/qa.py` must
not change one character of them.

    python tools/qa_answers.py --save /tmp/qa-before.json
    python tools/qa_answers.py --compare /tmp/qa-before.json   # exit 1 on a difference
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def questions() -> list[str]:
    found: list[str] = []
    for name in ("qa_fixture.json", "qa_care_fixture.json"):
        found += [q["q"] for q in json.loads((ROOT / "tests/dogs" / name).read_text())["questions"]]
    # every string literal the Q&A tests ask
    for test in sorted((ROOT / "tests/dogs").glob("test_qa*.py")):
        for node in ast.walk(ast.parse(test.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                if 3 <= len(text) <= 120 and "\n" not in text:
                    found.append(text)
    return sorted(set(found))


def dump() -> dict[str, object]:
    from crossmodal.dogs import qa
    from crossmodal.errors import CrossmodalError

    out: dict[str, object] = {}
    for q in questions():
        for lang in (None, "en", "zh"):
            try:
                out[f"{lang}|{q}"] = qa.answer(q, lang=lang, use_llm=False).to_dict()
            except CrossmodalError as exc:
                out[f"{lang}|{q}"] = f"{type(exc).__name__}: {exc}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--compare", type=Path)
    args = parser.parse_args()
    now = dump()
    if args.save:
        args.save.write_text(json.dumps(now, ensure_ascii=False, indent=1))
        print(f"{len(now)} answers saved to {args.save}")
        return 0
    before = json.loads(args.compare.read_text())
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for key in differ[:20]:
        print(f"{key}\n  before: {before.get(key)}\n  now:    {now.get(key)}")
    print(f"{len(differ)} of {len(before)} answers differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
