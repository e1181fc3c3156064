"""Traffic reconstruction: invert DCI logs into arrivals, fit background profiles, generate load.

* :mod:`.inversion`: grants -> served bytes, bursts, buffer bounds (missed DCIs handled)
* :mod:`.classify`: per-user traffic class
* :mod:`.distributions`: KS-chosen parametric or empirical distributions
* :mod:`.channel`: MCS Markov channel model
* :mod:`.profile`: the versioned background profile (fit, save, load + validate)
* :mod:`.background`: background users, traffic and channels sampled from a profile
* :mod:`.policy`: pf with the link adaptation of the real logs, for background users

See docs/traffic-reconstruction.md.
"""

from neuralemu.traffic_recon.inversion import ReconParams, Reconstruction, reconstruct

__all__ = ["ReconParams", "Reconstruction", "reconstruct"]
