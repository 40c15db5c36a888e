"""CLI sub-commands, one module per room; each imports its heavy stack inside the command."""
