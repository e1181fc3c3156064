"""The only kernel state NeuralEmu puts in the root namespace: iptables rules of ``shell``.

``neuralemu shell`` links its testbed's core side to the root namespace so the
command under test reaches the outside, like ``mm-link``. That needs a
MASQUERADE and two FORWARD rules in the root namespace. Each carries the
comment ``neuralemu:<prefix>``; this module finds and deletes exactly those.
"""

from __future__ import annotations

import re
import shlex
import shutil

from neuralemu.datapath import netns

TAG = "neuralemu:"
_BINS = ("iptables", "ip6tables", "iptables-legacy", "ip6tables-legacy")


def _saves():
    for b in _BINS:
        if shutil.which(b) and shutil.which(b + "-save"):
            yield b, netns.run([b + "-save"], check=False).stdout


def list_rules(prefix: str | None = None) -> list[tuple[str, str]]:
    """[(prefix, "bin table rule")] for every root-namespace rule tagged by this project."""
    rules = []
    for b, save in _saves():
        table = "filter"
        for line in save.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            m = re.search(r'--comment "?' + TAG + r'([a-z0-9]+)"?', line)
            if line.startswith("-A ") and m and (prefix is None or m.group(1) == prefix):
                rules.append((m.group(1), f"{b} -t {table} {line}"))
    return rules


def rule_prefixes() -> set[str]:
    return {p for p, _ in list_rules()}


def remove_rules(prefix: str) -> int:
    removed = 0
    for _, rule in list_rules(prefix):
        args = shlex.split(rule)
        b, table, spec = args[0], args[2], args[3:]
        spec[0] = "-D"
        if netns.run([b, "-t", table] + spec, check=False).returncode == 0:
            removed += 1
    return removed


def add_rule(prefix: str, table: str, spec: list[str], v6: bool = False) -> None:
    b = "ip6tables" if v6 else "iptables"
    netns.run([b, "-t", table] + spec + ["-m", "comment", "--comment", TAG + prefix])
