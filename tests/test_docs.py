"""The docs describe the tool as built: generated parts match, commands and links are real."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from octobatch.cli import build_parser
from octobatch.manifest import load_manifest
from octobatch.models import known_models
from octobatch.progress import Event
from octobatch.reference import render_reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _shell_blocks(markdown: str) -> list[str]:
    """The command lines of each ```sh block, comments dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL)
    return [
        "\n".join(line for line in block.splitlines() if line and not line.startswith("#"))
        for block in blocks
    ]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no subcommands")


def test_reference_is_rendered_from_the_schemas() -> None:
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/reference.md is stale: run `python -m octobatch.reference > docs/reference.md`"
    )


def test_reference_names_every_model_and_field() -> None:
    text = render_reference()
    for schema in sorted((ROOT / "schemas" / "models").glob("*.schema.json")):
        assert f"### {schema.name.removesuffix('.schema.json')}\n" in text
    assert "| `input_reference` |" in text and "| `aspect_ratio` |" in text


def test_readme_lists_every_model_the_loader_knows() -> None:
    (paragraph,) = re.findall(r"^Supported models: (.*?)(?:\n\n|\. Job)", README.read_text(
        encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert sorted(re.findall(r"`([^`]+)`", paragraph)) == known_models()


def test_readme_says_how_many_clips_the_demo_makes() -> None:
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"]
    (said,) = re.findall(r"The demo generates (\w+) clips", README.read_text(encoding="utf-8"))
    jobs = load_manifest(ROOT / "manifests" / "demo.yaml").jobs
    assert said == (words[len(jobs)] if len(jobs) < len(words) else str(len(jobs)))


def test_readme_starts_with_the_demo_and_the_test_command() -> None:
    demo, tests = _shell_blocks(README.read_text(encoding="utf-8"))[:2]
    assert "octobatch run manifests/demo.yaml --simulate" in demo
    assert (ROOT / "manifests" / "demo.yaml").is_file()
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines(), (
        "the README's test command must be the one CI runs, verbatim"
    )


def test_cli_doc_covers_every_subcommand_and_flag() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `octobatch (\w+)[^`]*`\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL))
    missing = []
    for name, sub in _subcommands().items():
        if name not in sections:
            missing.append(f"section for `octobatch {name}`")
            continue
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and f"`{flag}" not in sections[name]:
                    missing.append(f"{name} {flag}")
    assert not missing, f"docs/cli.md does not document: {', '.join(missing)}"


@pytest.mark.parametrize("name", ["OCTOPUSX_API_KEY", "OCTOBATCH_BASE_URL"])
def test_cli_doc_names_the_environment(name: str) -> None:
    assert f"`{name}`" in (DOCS / "cli.md").read_text(encoding="utf-8")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_relative_links_point_at_real_files_and_headings() -> None:
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        links = re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text(encoding="utf-8"))
        for target, anchor in links:
            if "://" in target or target.startswith("mailto:"):
                continue
            path = page.parent / target if target else page
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            elif anchor and anchor not in _anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{page.relative_to(ROOT)} -> {target}#{anchor}")
    assert not broken, f"broken links: {broken}"


def test_readme_manifest_example_is_the_shipped_example() -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert example == (ROOT / "manifests" / "example.yaml").read_text(encoding="utf-8")


def test_cli_doc_lists_every_json_event() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    names = sorted(cls.name for cls in Event.__subclasses__())
    assert len(names) > 10
    assert [n for n in names if f"`{n}`" not in text] == []
