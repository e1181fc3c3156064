import subprocess
import sys

from neuralemu.cli import main
from neuralemu.errors import InputError


def test_help_lists_commands(capsys):
    assert main([]) == 2


def test_version():
    out = subprocess.run([sys.executable, "-m", "neuralemu.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("neuralemu ")


def test_input_error_names_file_line_field():
    err = InputError("trace.csv", "not a number: 'x'", line=12, field="mcs_index")
    assert str(err) == "trace.csv:12: field 'mcs_index': not a number: 'x'"
