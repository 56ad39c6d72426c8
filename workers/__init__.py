"""Worker processes: the control worker (workflows + general activities) and the per-host
worker (hot-path activities pinned to the machine where the hot path runs)."""
