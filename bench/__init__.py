"""peft-bench: a reproduction suite for parameter-efficient fine-tuning."""

__version__ = "0.1.0"
