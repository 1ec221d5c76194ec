#!/usr/bin/env python3
"""Checks the Helix snippets: languages.toml and config.toml parse as TOML, the codetier server entry
names the binary, every language the README promises is attached with its usual server first, and
every key binding expands (as Helix would) into a codetier command whose argument is the JSON object
the server expects."""

import json
import re
import subprocess
import sys
import tomllib
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent.parent / "README.md"
COMMANDS = {"codetier.explain", "codetier.generate", "codetier.review", "codetier.usage"}


def load(name: str) -> dict:
    with open(HERE / name, "rb") as f:
        return tomllib.load(f)


def readme_languages() -> list[str]:
    """The Helix languages README.md (section Editors) lists between its `helix-languages` markers."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- helix-languages -->(.*?)<!-- /helix-languages -->", text, re.S)
    if m is None:
        raise AssertionError("README.md has no <!-- helix-languages --> list")
    return re.findall(r"`([a-z0-9+#-]+)`", m.group(1))


def expand(command_line: str, variables: dict[str, str]) -> str:
    """Helix's expansion of %{var} and %sh{...} (variables first, then shell), enough for our bindings."""
    def var(m: re.Match) -> str:
        name = m.group(1)
        if name not in variables:
            raise AssertionError(f"unknown Helix variable %{{{name}}}")
        return variables[name]

    line = re.sub(r"%\{([a-z_]+)\}", var, command_line)

    def shell(m: re.Match) -> str:
        out = subprocess.run(["sh", "-c", m.group(1)], capture_output=True, text=True, check=True)
        return out.stdout.rstrip("\n")

    return re.sub(r"%sh\{([^{}]*)\}", shell, line)


class LanguagesToml(unittest.TestCase):
    def setUp(self) -> None:
        self.conf = load("languages.toml")

    def test_server_entry_names_the_binary(self) -> None:
        server = self.conf["language-server"]["codetier"]
        self.assertEqual(server["command"], "codetier")
        # Helix speaks stdio and codetier serves stdio by default: no args needed, none that break it.
        self.assertNotIn("--tcp", server.get("args", []))
        self.assertIsInstance(server.get("config", {}), dict)
        self.assertGreaterEqual(server.get("timeout", 20), 1)

    def test_every_readme_language_is_attached_after_its_usual_server(self) -> None:
        entries = {lang["name"]: lang for lang in self.conf["language"]}
        promised = readme_languages()
        self.assertGreaterEqual(len(promised), 8, promised)
        for name in promised:
            with self.subTest(language=name):
                self.assertIn(name, entries, f"README promises {name} but languages.toml has no entry")
                servers = entries[name]["language-servers"]
                self.assertEqual(servers[-1], "codetier")
                self.assertEqual(servers.count("codetier"), 1)
                self.assertGreaterEqual(len(servers), 2, "the language's usual server must stay first")
        self.assertEqual(sorted(entries), sorted(promised), "languages.toml and the README list differ")

    def test_no_language_entry_redefines_more_than_its_servers(self) -> None:
        # Only `name` and `language-servers`: anything else would silently override Helix's defaults.
        for lang in self.conf["language"]:
            with self.subTest(language=lang["name"]):
                self.assertEqual(set(lang), {"name", "language-servers"})


class ConfigToml(unittest.TestCase):
    VARIABLES = {"file_path_absolute": "/home/u/src/app/main.rs", "selection_line_start": "5", "selection_line_end": "9"}

    def bindings(self) -> list[tuple[str, str]]:
        keys = load("config.toml")["keys"]
        out = []
        for mode, table in keys.items():
            for key, value in table["space"]["i"].items():
                out.append((f"{mode} space i {key}", value))
        return out

    def test_bindings_expand_to_the_servers_argument(self) -> None:
        bindings = self.bindings()
        self.assertGreaterEqual(len(bindings), 4)
        seen = set()
        for where, value in bindings:
            with self.subTest(binding=where):
                self.assertTrue(value.startswith(":lsp-workspace-command "), value)
                rest = expand(value[len(":lsp-workspace-command "):], self.VARIABLES)
                command, _, raw = rest.partition(" ")
                self.assertIn(command, COMMANDS)
                seen.add(command)
                if command == "codetier.usage":
                    self.assertEqual(raw.strip(), "")
                    continue
                arg = json.loads(raw)
                self.assertEqual(arg["uri"], "file:///home/u/src/app/main.rs")
                # Helix lines are 1-based; LSP lines are 0-based and the end is exclusive.
                self.assertEqual(arg["range"], {"start": {"line": 4, "character": 0}, "end": {"line": 9, "character": 0}})
                self.assertTrue(set(arg) <= {"uri", "range", "tier", "fresh"}, arg)
        self.assertEqual(seen, COMMANDS)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
