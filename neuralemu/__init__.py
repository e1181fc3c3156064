"""NeuralEmu: a 5G network emulator with a scheduler learned from telemetry."""

__version__ = "0.1.0"
