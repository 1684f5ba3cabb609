"""Consumer daemons: the runtime shared by every group, and one module per projection."""
