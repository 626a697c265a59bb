"""Chat templates: simulpo's own (ChatML style) and the one rendering of a dialogue to tokens.

A model brought with ``--model PATH`` keeps its own template; only tokenizers trained by
simulpo use :data:`CHAT_TEMPLATE`. ``END_OF_TURN`` closes every turn and is the token an
assistant piece stops at.

**One rendering for training and inference.** :class:`ChatFormat` turns a dialogue
(``stream/dialogue.py``) into tokens turn by turn, exactly as the LLM policy writes it::

    system tokens | user turn 0 + generation prompt | piece 0 | end-of-turn | user turn 1 ...

The text around the pieces (system prompt, turn headers, the user turns, the generation
prompt, what the template writes after an end-of-turn token) comes from the tokenizer's
own chat template and is tokenized one segment at a time; a piece is the tokens the
assistant wrote (sampled by the policy; for SFT, its text encoded on its own), and its end
of turn is the template's end-of-turn token. The sequence ends at the last end-of-turn
token. The policy (:mod:`simulpo.policies.llm`) builds its dialogue through
:meth:`ChatFormat.open_turn` and :meth:`ChatFormat.close_turn`, and SFT labels
(:func:`simulpo.train.sft.tokenize_dialogue`) come from :meth:`ChatFormat.transcript`, which
calls the same two methods: SFT trains on exactly the tokens the policy later writes, and
its label mask is the rollout's policy mask.

Assistant contents are never rendered by the template (each is a marker in the rendering),
so the KV cache always holds what the policy really wrote, whatever the template would do
to a content (Llama-3 trims it). The template must be append-only: a dialogue's rendering
is a prefix of its rendering with one more turn (checked on the first turns of every
dialogue; KV-cache reuse needs it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simulpo.errors import ConfigError, SimulpoError
from simulpo.stream.dialogue import Message, assistant_message, system_message, user_message

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

#: the content that stands for assistant message ``i`` in a rendering: private-use
#: characters, which no text holds and no template filter (``trim``, ...) touches
_MARK = "\ue000{}\ue001"


@dataclass
class Transcript:
    """A dialogue's tokens as the policy writes them (see the module docstring).

    ``policy_mask[i]`` is True where the assistant wrote ``token_ids[i]``: its pieces and
    the end-of-turn tokens it chose; ``logprobs[i]`` is that token's log-prob under the
    sampling distribution (0.0 elsewhere, and for tokens written from text).
    ``piece_spans[t]`` is the ``(start, stop)`` slice of piece ``t`` and its end-of-turn
    token; ``truncated[t]`` says that piece ``t`` ran out of budget (or stopped at another
    stop token), so its end-of-turn token was added for it and is not in the mask.
    """

    token_ids: list[int] = field(default_factory=list)
    policy_mask: list[bool] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    piece_spans: list[tuple[int, int]] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    #: tokens of the system prompt (a bounded cache always keeps them)
    system_len: int = 0
    #: ``turn_starts[t]``: index in ``token_ids`` where the tokens of user turn ``t`` begin
    turn_starts: list[int] = field(default_factory=list)
    #: the template's rendering so far, a marker in place of each assistant content
    text: str = ""

    def extend(self, ids: Sequence[int], policy: bool = False, logprobs=None) -> None:
        self.token_ids += ids
        self.policy_mask += [policy] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


class ChatFormat:
    """A tokenizer's chat template: its end-of-turn token and the turn-by-turn rendering."""

    #: turns of every dialogue whose quick rendering is checked against a full rendering
    CHECKED_TURNS = 3

    def __init__(self, tokenizer) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError("the tokenizer has no chat template; simulpo's chat models need one")
        self.tokenizer = tokenizer
        self.end_id = self._end_of_turn()
        self.end_text = tokenizer.decode([self.end_id], skip_special_tokens=False)
        self._quick = True  # False once the template needed more than the last turn

    def render(self, messages: Sequence[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=skip_special, clean_up_tokenization_spaces=False
        )

    def _end_of_turn(self) -> int:
        """The special token the template puts right after an assistant message's content
        (``<|im_end|>``, ``<|eot_id|>``, ...); the tokenizer's EOS when there is none."""
        mark = _MARK.format(2)
        text = self.render(
            [system_message(), user_message("x"), assistant_message(mark)], generation_prompt=False
        )
        if mark in text:
            after = self.encode(text[text.index(mark) + len(mark) :])
            if after and after[0] in set(self.tokenizer.all_special_ids):
                return after[0]
        if self.tokenizer.eos_token_id is None:
            raise ConfigError("cannot tell the chat template's end-of-turn token, and no EOS token")
        return self.tokenizer.eos_token_id

    def stop_ids(self, model) -> frozenset[int]:
        """End-of-turn, the tokenizer's EOS and the model's generation EOS tokens."""
        ids = {self.end_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        ids.update([eos] if isinstance(eos, int) else list(eos or []))
        return frozenset(ids)

    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.end_id

    # ------------------------------------------------------------ turn by turn

    def open_turn(self, t: Transcript, user: Message, check: bool = True) -> list[int]:
        """Append user turn ``user`` and the generation prompt to ``t``; returns their tokens
        (at the first turn, the system prompt's tokens come first).

        ``t.messages`` must hold the dialogue so far (an optional system message first).
        ``check``: render the whole dialogue to check the quick rendering (see
        :meth:`_new_text`); the policy and :meth:`transcript` check each dialogue's first
        :attr:`CHECKED_TURNS` turns.
        """
        start = len(t.token_ids)
        if not t.turn_starts:
            full = self.render([*t.messages, user], generation_prompt=True)
            system = self.render(t.messages, generation_prompt=False) if t.messages else ""
            if system and full.startswith(system):  # kept whole by a bounded cache
                t.extend(self.encode(system))
                t.system_len = len(t.token_ids)
                delta = full[len(system) :]
            else:  # no system prompt, or one the template does not render on its own
                delta = full
            t.text = full
        else:
            delta = self._new_text(t, user, check)
            t.text += delta
        t.messages.append(user)
        t.turn_starts.append(len(t.token_ids))
        t.extend(self.encode(delta))
        return t.token_ids[start:]

    def close_turn(
        self,
        t: Transcript,
        piece: Sequence[int],
        closed: bool,
        logprobs: Sequence[float] | None = None,
        content: str | None = None,
    ) -> None:
        """Append a piece's tokens (``piece``, without its end of turn) and the end-of-turn
        token: in the mask when the assistant chose it (``closed``), added for it otherwise.
        ``logprobs``: of the piece's tokens, then of the end of turn when ``closed``.
        ``content``: the piece's text (default: the tokens decoded)."""
        start = len(t.token_ids)
        if closed:
            t.extend([*piece, self.end_id], policy=True, logprobs=logprobs)
        else:
            t.extend(piece, policy=True, logprobs=logprobs)
            t.extend([self.end_id])
        t.piece_spans.append((start, len(t.token_ids)))
        t.truncated.append(not closed)
        t.messages.append(assistant_message(self.decode(piece) if content is None else content))
        t.text += _MARK.format(len(t.messages) - 1) + self.end_text

    def _new_text(self, t: Transcript, user: Message, check: bool) -> str:
        """The text a new user turn adds after the last end-of-turn token.

        It is found from a small rendering: the system prompt, the last turn and the new
        one. With ``check`` (and once the template needed it) the whole dialogue is
        rendered too, which checks the quick text and that the template only appends; a
        template whose text depends on more than the last turn then switches this format to
        whole renderings.
        """
        marked = _marked(t.messages)
        system = marked[:1] if marked[0]["role"] == "system" else []
        last = _MARK.format(len(marked) - 1)
        quick = self._after(self.render([*system, *marked[-2:], user], True), last)
        if quick is not None and not check and self._quick:
            return quick
        full = self.render([*marked, user], True)
        after = self._after(full, last)
        if after is None:
            raise SimulpoError(
                "the chat template does not close an assistant turn with its end-of-turn "
                f"token {self.end_text!r} right after the content; simulpo needs it (it is "
                "the token a piece stops at)"
            )
        if not full.startswith(t.text):
            raise SimulpoError(
                "the chat template is not append-only: rendering the dialogue with a new turn "
                "changed the text of earlier turns, so the KV cache cannot be reused "
                f"(expected the new rendering to start with ...{t.text[-60:]!r})"
            )
        if quick != after:
            self._quick = False
        return after

    def _after(self, text: str, mark: str) -> str | None:
        """What follows the marked content and its end-of-turn text; None if no end of turn."""
        at = text.rfind(mark)
        if at < 0:
            return None
        rest = text[at + len(mark) :]
        return rest[len(self.end_text) :] if rest.startswith(self.end_text) else None

    # ------------------------------------------------------------ whole dialogues

    def transcript(self, messages: Sequence[Message]) -> Transcript:
        """A whole dialogue's tokens as the policy would have written it: an optional
        system message, then user and assistant messages alternating, ending with an
        assistant one. Each piece is its content encoded on its own; an assistant message
        with ``"truncated": true`` (a piece cut by its token budget) does not train its
        end-of-turn token."""
        check_alternating(messages)
        t = Transcript(messages=[dict(messages[0])] if messages[0]["role"] == "system" else [])
        turns = messages[len(t.messages) :]
        for k in range(0, len(turns), 2):
            user, piece = turns[k], turns[k + 1]
            self.open_turn(t, user_message(user["content"]), check=k // 2 < self.CHECKED_TURNS)
            content = piece["content"]
            closed = not piece.get("truncated", False)
            self.close_turn(t, self.encode(content), closed, content=content)
        return t


def check_alternating(messages: Sequence[Message]) -> None:
    """Raise ValueError unless ``messages`` is a dialogue of simulpo's shape."""
    roles = [m["role"] for m in messages]
    turns = roles[1:] if roles and roles[0] == "system" else roles
    if (
        not turns
        or len(turns) % 2
        or any(r != ("user", "assistant")[i % 2] for i, r in enumerate(turns))
    ):
        raise ValueError(
            "a dialogue is an optional system message, then user and assistant messages "
            f"alternating, ending with an assistant one; got roles {roles}"
        )


def _marked(messages: Sequence[Message]) -> list[Message]:
    """The messages with each assistant content replaced by its marker."""
    return [
        assistant_message(_MARK.format(i)) if m["role"] == "assistant" else m
        for i, m in enumerate(messages)
    ]
