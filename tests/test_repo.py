"""Guards on what a new user meets first: README's commands and CI."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks, inside = [], False
    for line in lines:
        if line.startswith("```"):
            inside = not inside
            continue
        if inside and line.startswith("python3 -m venv"):
            blocks.append(line)
    return blocks


def test_ci_runs_exactly_the_readme_test_command():
    commands = _readme_commands()
    test_cmd = next(c for c in commands if "pytest" in c)
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert test_cmd in ci


def test_readme_main_command_installs_with_the_constraints_and_trains_lfw():
    main_cmd = next(c for c in _readme_commands() if "cmmkit train" in c)
    assert "-c constraints.txt" in main_cmd and "--pair lfw_faces_attrs" in main_cmd
