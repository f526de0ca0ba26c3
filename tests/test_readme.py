"""The README's two set-up commands: the test command is the one CI runs, and the main job exists."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks if b.strip().startswith("python3 -m venv .venv")]


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_command():
    main_job, tests = readme_commands()
    assert main_job.endswith(".venv/bin/mtm reproduce --preset small")
    # the tests and, with nbmake, every chapter once (book/conftest.py: alone, smoke settings)
    assert tests.endswith(".venv/bin/python -m pytest --nbmake tests/ book/")
    assert tests in (ROOT / ".ci" / "run").read_text()
    assert any(line.startswith("nbmake") for line in (ROOT / "requirements.txt").read_text().splitlines())


def test_the_main_job_is_a_real_command():
    from mtm.cli import build_parser

    main_job = readme_commands()[0]
    args = shlex.split(main_job.split("&&")[-1])[1:]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "reproduce" and parsed.preset == "small"
