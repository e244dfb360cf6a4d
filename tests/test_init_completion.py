"""`octobatch init` writes a starter that validates; `octobatch completion` completes for real."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from octobatch.cli import build_parser, main
from octobatch.commands.completion import script
from octobatch.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent


def test_init_writes_a_commented_manifest_that_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert capsys.readouterr().out == "wrote octobatch.yaml; next: octobatch plan octobatch.yaml\n"
    text = (tmp_path / "octobatch.yaml").read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=")
    assert "#   octobatch validate octobatch.yaml   check it" in text
    manifest = load_manifest(tmp_path / "octobatch.yaml")
    assert [job.id for job in manifest.jobs] == [
        "beach", "walk-cat-16-9", "walk-cat-9-16", "walk-dog-16-9", "walk-dog-9-16"]
    assert main(["validate", "octobatch.yaml"]) == 0
    assert capsys.readouterr().out == "octobatch.yaml: OK, 5 jobs (5 omni-fast)\n"

    # The commented prices block is valid as soon as it is uncommented.
    for line in ("prices:", "omni-fast: {per_second", "jimeng-video-3.0: {per_job", "currency:",
                 "max_cost:"):
        text = text.replace(f"# {line}", line).replace(f"#   {line}", f"  {line}")
    (tmp_path / "octobatch.yaml").write_text(text, encoding="utf-8")
    assert main(["plan", "octobatch.yaml"]) == 0
    assert capsys.readouterr().out.endswith(
        "total cost: 2.00 USD; already spent: 0.00 USD\n")


def test_init_points_the_editor_at_the_schema_relative_to_the_new_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "schemas", copy / "schemas")
    target = copy / "manifests" / "spring.yaml"
    target.parent.mkdir()
    from octobatch.commands import init

    schema_dir = copy / "schemas"
    assert init.schema_reference(target, schema_dir) == "../schemas/manifest.schema.json"
    line = init.render(target, schema_dir).splitlines()[0]
    assert line == "# yaml-language-server: $schema=../schemas/manifest.schema.json"
    schema = (target.parent / line.split("=", 1)[1]).resolve()
    assert json.loads(schema.read_text())["title"] == "octobatch manifest"


def test_init_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("version: 1\njobs: []\n")
    assert main(["init", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"octobatch: {target} exists; choose another name or add --force to overwrite it\n")
    assert target.read_text() == "version: 1\njobs: []\n"
    assert main(["init", str(target), "--force"]) == 0
    assert target.read_text().startswith("# yaml-language-server: $schema=")
    assert main(["init", str(tmp_path / "nope" / "x.yaml")]) == 2
    assert capsys.readouterr().err.endswith(
        f"octobatch: {tmp_path / 'nope'} does not exist; create the folder first\n")


def _complete(words: list[str], tmp_path: Path) -> list[str]:
    """Ask bash itself: source the script, then run its completion function on `words`."""
    (tmp_path / "octobatch.bash").write_text(script("bash"))
    line = " ".join(words)
    program = (f"source {tmp_path / 'octobatch.bash'}\n"
               f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
               f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
               "_shtab_octobatch\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    return sorted(filter(None, done.stdout.splitlines()))


def test_bash_completes_commands_flags_choices_and_files(tmp_path: Path) -> None:
    (tmp_path / "spring.yaml").write_text("version: 1\n")
    assert _complete(["octobatch", "pl"], tmp_path) == ["plan"]
    assert _complete(["octobatch", "run", "--re"], tmp_path) == [
        "--replace", "--replace-rejected", "--retry-failed"]
    assert _complete(["octobatch", "completion", ""], tmp_path) == ["bash", "fish", "zsh"]
    assert _complete(["octobatch", "plan", "spr"], tmp_path) == ["spring.yaml"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_shell_script_names_every_command_and_flag(shell: str) -> None:
    text = script(shell)
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name, sub in subparsers.choices.items():
        assert name in text
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--"):
                    assert flag.lstrip("-") in text, f"{shell}: {name} {flag}"


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "powershell"]) == 2
    assert "argument SHELL: invalid choice: 'powershell' (choose from 'bash', 'zsh', 'fish')" \
        in capsys.readouterr().err
