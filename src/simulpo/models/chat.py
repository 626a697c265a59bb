"""The chat template and special tokens of simulpo's own tokenizers (ChatML style).

A model brought with ``--model PATH`` keeps its own template; only tokenizers trained by
simulpo use this one. ``END_OF_TURN`` closes every turn and is the token an assistant
piece stops at.
"""

from __future__ import annotations

PAD = "<|pad|>"
TURN_START = "<|im_start|>"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = [PAD, TURN_START, END_OF_TURN]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
