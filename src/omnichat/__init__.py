"""OmniChat: a self-hostable, multi-provider LLM chat backend."""

__version__ = "0.1.0"
