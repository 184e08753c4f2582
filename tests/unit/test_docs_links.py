"""Every reference in the README and docs/ leads somewhere: relative links (and their #anchors),
"see ..." references to a section, files named, and the comments that point readers there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# A section named in words: see "Scale and cost", README "Deploy", docs/alerts.md "Quiet hours".
QUOTED_SECTION = re.compile(
    r"(?:\b[Ss]ee|\b(README(?:\.md)?|(?:docs/)?[\w-]+\.md),?)\s+\"([^\"]{3,60})\"")
# A Markdown file named in prose or code spans, e.g. docs/billing.md, DESIGN.md.
MD_FILE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
# A repository path in a code span: `license_monitor/state/table.py`, `infra/workbook.json`.
REPO_PATH = re.compile(
    r"`((?:license_monitor|orchestrators|activities|simulator|tests|infra|benchmarks|scripts"
    r"|docs|\.ci)/[^`\s<>*]*)`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def prose(path: Path) -> str:
    """The file without its fenced code blocks (their text is code, not references)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def headings(path: Path) -> list[str]:
    return [match.group(2) for match in HEADING.finditer(prose(path))]


def anchors(path: Path) -> set[str]:
    """Every anchor of a file, with GitHub's -1, -2 suffixes for repeated headings."""
    found: set[str] = set()
    for heading in headings(path):
        base = slug(heading)
        name, count = base, 0
        while name in found:
            count += 1
            name = f"{base}-{count}"
        found.add(name)
    return found


def all_headings(path: Path | None = None) -> set[str]:
    """Heading texts (lower case, code marks dropped) of one file, or of README and docs/."""
    return {re.sub(r"`", "", heading).strip().lower() for doc in ([path] if path else DOCS)
            for heading in headings(doc)}


def unknown_sections(text: str, base: Path) -> list[str]:
    """Sections named in words ('see "X"', 'README "X"', 'docs/a.md "X"') that do not exist."""
    missing = []
    for file_name, quoted in QUOTED_SECTION.findall(text):
        name = " ".join(quoted.split())
        if not file_name:
            known = all_headings()
        else:
            target = ROOT / "README.md" if file_name.startswith("README") else next(
                (path for path in (base / file_name, ROOT / file_name, ROOT / "docs" / file_name)
                 if path.exists()), None)
            known = all_headings(target) if target is not None else set()
        # A reference may shorten a heading ("Always ready" for "...: always ready and ...").
        if not any(name.lower() in heading for heading in known):
            missing.append(f"{file_name or 'see'} \"{name}\"")
    return missing


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def test_the_readme_is_a_front_page_with_a_table_of_contents() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    own = anchors(ROOT / "README.md")
    contents = [target for target in LINK.findall(readme.split("\n## ", 1)[0])
                if target.startswith("#")]
    # The contents list, before the first section, links every section of the page.
    sections = {slug(heading) for heading in re.findall(r"^## (.*)$", prose(ROOT / "README.md"),
                                                          flags=re.MULTILINE)}
    assert {target[1:] for target in contents} == sections
    assert {target[1:] for target in contents} <= own


@pytest.mark.parametrize("path", DOCS, ids=ids(DOCS))
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for target in LINK.findall(prose(path)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {file_part}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {linked.name}")
    assert broken == []


@pytest.mark.parametrize("path", DOCS, ids=ids(DOCS))
def test_every_see_reference_names_a_section_that_exists(path: Path) -> None:
    assert unknown_sections(prose(path), path.parent) == []


@pytest.mark.parametrize("path", DOCS, ids=ids(DOCS))
def test_every_file_named_exists(path: Path) -> None:
    text = prose(path)
    missing = []
    for name in MD_FILE.findall(text):
        if not ((path.parent / name).exists() or (ROOT / name).exists()):
            missing.append(name)
    for name in REPO_PATH.findall(text):
        if not (ROOT / name.rstrip("/")).exists():
            missing.append(name)
    assert missing == []


def test_the_files_that_send_readers_to_the_docs_point_at_sections_that_exist() -> None:
    comments = [ROOT / "requirements.txt", ROOT / "requirements-dev.txt",
                *sorted(ROOT.glob("license_monitor/**/*.py")), *sorted(ROOT.glob("tests/**/*.py")),
                *sorted(ROOT.glob("benchmarks/*.py")), *sorted(ROOT.glob("simulator/*.py"))]
    comments = [path for path in comments if path.name != "test_docs_links.py"]
    assert QUOTED_SECTION.findall((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    broken = [f"{path.relative_to(ROOT)}: {name}" for path in comments
              for name in unknown_sections(path.read_text(encoding="utf-8"), ROOT)]
    assert broken == []
    for path in comments[:2]:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        for name in MD_FILE.findall(text):
            assert (ROOT / name).exists(), f"{path.name} names {name}, which does not exist"


def test_the_link_checker_catches_what_it_is_for(tmp_path: Path) -> None:
    # The patterns above find each kind of reference (so a passing run means something).
    sample = ('See "Nowhere at all" and [x](missing.md#a) and docs/nope.md, '
              "`license_monitor/nope.py`.")
    assert QUOTED_SECTION.findall(sample) == [("", "Nowhere at all")]
    assert unknown_sections('README "No such section"', ROOT) == ['README "No such section"']
    assert LINK.findall(sample) == ["missing.md#a"]
    assert "docs/nope.md" in MD_FILE.findall(sample)
    assert REPO_PATH.findall(sample) == ["license_monitor/nope.py"]
    assert slug("Appendix: deploying by hand with `az`") == "appendix-deploying-by-hand-with-az"
    assert slug("Real-time gauge (optional)") == "real-time-gauge-optional"
