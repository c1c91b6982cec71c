"""How many CPU threads torch may use: shared by the embedding and Detoxify scorers."""

from __future__ import annotations

import os


def configure_torch_threads(threads: int) -> int:
    """Set torch's intra-op threads (process-wide) and return the number in use.

    0 means the CPUs this process may run on: torch's own default counts the machine's
    cores, which in a container limited to 2 CPUs oversubscribes them. Only ever lowers
    torch's default when ``threads`` is 0, so an operator's explicit number wins.
    """
    import torch

    if threads <= 0:
        try:
            usable = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            usable = os.cpu_count() or 1
        threads = min(torch.get_num_threads(), usable)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
