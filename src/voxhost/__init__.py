"""voxhost: a self-hosted speech server with resident model workers."""

__version__ = "0.1.0"
