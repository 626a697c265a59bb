"""A chat LM used as an offline translator, so the classic schedules can run over an LLM.

``translate_batch`` decodes single-turn offline dialogues (``dialogue.offline_messages``)
greedily, all sources of a batch together. ``continue_batch`` is forced-prefix decoding,
the usual way wait-k runs over an LLM: the assistant turn starts with the committed
target words and the model writes on from there.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulpo.decoding import Sampler, generate
from simulpo.errors import ConfigError
from simulpo.models.chat import ChatFormat
from simulpo.stream.dialogue import OFFLINE_SYSTEM_PROMPT, system_message, user_message
from simulpo.stream.units import split_units
from simulpo.translators.base import Translator


class LLMTranslator(Translator):
    """Greedy offline translation with a chat LM; ``joiner=""`` for character targets (zh/ja)."""

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens: int = 256,
        system_prompt: str = OFFLINE_SYSTEM_PROMPT,
        batch_size: int = 64,
        joiner: str = " ",
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ConfigError(
                f"max_new_tokens and batch_size must be at least 1, got {max_new_tokens}, {batch_size}"
            )
        if joiner not in (" ", ""):
            raise ConfigError(f"joiner must be ' ' (words) or '' (characters), got {joiner!r}")
        self.model = model
        self.chat = ChatFormat(tokenizer)
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        self.joiner = joiner
        self.unit = "word" if joiner == " " else "char"
        self.stop_ids = self.chat.stop_ids(model)

    def translate_batch(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        return self.continue_batch(sources, [[] for _ in sources])

    def continue_batch(
        self, sources: Sequence[Sequence[str]], prefixes: Sequence[Sequence[str]]
    ) -> list[list[str]]:
        """The units the model writes after the committed ``prefixes`` (forced decoding).

        Units are counted on the whole assistant text (prefix + continuation), so a
        continuation that glues onto the last committed word is not a new unit.
        """
        if len(sources) != len(prefixes):
            raise ValueError(f"{len(sources)} sources but {len(prefixes)} prefixes")
        out: list[list[str]] = []
        for i in range(0, len(sources), self.batch_size):
            out += self._continue(
                sources[i : i + self.batch_size], prefixes[i : i + self.batch_size]
            )
        return out

    def _continue(self, sources, prefixes) -> list[list[str]]:
        prompts = []
        for source, prefix in zip(sources, prefixes):
            messages = [system_message(self.system_prompt), user_message(list(source))]
            text = self.chat.render(messages, generation_prompt=True) + self.joiner.join(prefix)
            prompts.append(self.chat.encode(text))
        result = generate(
            self.model,
            None,
            prompts,
            [self.max_new_tokens] * len(prompts),
            self.stop_ids,
            Sampler(),
            self.chat.pad_id(),
        )
        units = []
        for prefix, tokens, stopped in zip(prefixes, result.tokens, result.stopped):
            written = self.chat.decode(tokens[:-1] if stopped else tokens, skip_special=True)
            full = split_units(self.joiner.join(prefix) + written, self.unit)
            units.append(full[len(prefix) :])
        return units
