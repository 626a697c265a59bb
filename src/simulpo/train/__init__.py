"""Training: SFT on dialogues, RL (rollouts → rewards → GRPO), atomic checkpoints."""

from simulpo.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from simulpo.train.sft import SFTConfig, load_dialogues, tokenize_dialogue, train_sft

__all__ = [
    "SFTConfig",
    "latest_checkpoint",
    "load_checkpoint",
    "load_dialogues",
    "save_checkpoint",
    "tokenize_dialogue",
    "train_sft",
]
