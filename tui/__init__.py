"""tune-tui: the Textual app. Reads and controls through ``tui.data`` and ``runner``; computes nothing itself."""
