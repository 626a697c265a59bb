"""Apertium, the rule-based offline MT system, as a :class:`Translator` for baselines.

Wait-k and friends call :meth:`ApertiumTranslator.translate_batch` once per streaming turn
with every live sentence prefix, so the translator must be fast on many short inputs. It
keeps one Apertium pipeline alive — the pair's mode (``eng-spa.mode``) with every stage in
null-flush mode (``apertium-wblank-mode -z``) — and streams each batch through it:

- each source is one segment ended by a NUL byte; in null-flush mode every stage finishes
  and flushes its output when it reads a NUL, so segments are translated one by one and
  the output holds exactly one NUL per segment;
- segments are escaped and ended as ``apertium-destxt`` would end a text file: reserved
  characters (``\\ [ ] ^ $ / < > @ { }``) get a backslash, and the segment gets a final
  ``.[]`` — an extra period that Apertium uses up as the end of the input (without it the
  segment's last token, a final "." or the "b" of "a-b", is lost) and an empty format
  block. The output is un-escaped and the period and block removed, as ``apertium-retxt``
  does, so a segment translates as ``echo SEGMENT | apertium -u eng-spa`` translates it,
  up to the tagger work-around below;
- the generator runs without unknown-word marks (``apertium -u``), and the marks that
  remain are removed from the start of output words: ``*`` (unknown word), ``#``
  (generation error), ``@`` (lemma missing from the bilingual dictionary), so ``@redxq``
  becomes ``redxq``. The output is split into words on whitespace.

The alternatives, measured on Bible verse prefixes (14 words on average, 2-core machine):
one ``apertium`` process per segment runs about 7 segments/s; one segment per line in a
single ``apertium`` call (txt or line format) is *not* one-to-one, because Apertium's rules
match across line breaks ("the red⏎car is here" comes out as "El coche⏎rojo es aquí");
the ``apertium -z`` command itself holds NUL-flushed output back in its gawk wrappers
while its input stays open, so it cannot serve a persistent process; a fresh null-flush
pipeline per batch of 300 runs about 1,100 segments/s. The persistent pipeline runs about
1,900 segments/s (900 whole verses/s); an LRU cache answers repeated prefixes (the same
prefixes recur across wait-k's k and across policies) without Apertium.

A tagger bug needs a work-around: ``apertium-tagger`` (``find_similar_ambiguity_class`` in
Apertium 3.8's tagger_utils.cc) overwrites its *open-class* tag set, the one it gives
unknown words, whenever it meets a word whose ambiguity class it was not trained on. In
eng-spa such words are everywhere ("I", "near", "known", "drunk"), so the tags of unknown
words — and with them the translation of, e.g., "Ahimaaz called, and said" ("llamó" or
"llamado") — would depend on what the process translated before. Every pipeline therefore
first translates a fixed warm-up line holding all such words found in the English Bible,
which drives the open class into its final state: after it, outputs no longer depend on
what came before (checked by translating 20,000 verses in between; a word outside the
list could still move it — ``apertium-tagger -d`` names such words), and a batch gives
exactly what each of its sources gives alone. Compared with a fresh ``apertium`` process
per sentence (whose open class is intact until the sentence's own "I"), 12 of 400 random
Bible prefixes come out differently, by a word or two, all of them holding unknown words.

Tested with Apertium 3.8.3 and apertium-eng-spa 0.8.1 (Debian 12).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from simulpo.errors import SimulpoError
from simulpo.translators.base import Translator

if TYPE_CHECKING:
    from typing_extensions import Self

_INSTALL_HINT = "install Debian packages apertium and apertium-{pair}, or run scripts/setup.sh"

#: Per pair, text translated (and discarded) when a pipeline starts; see the module notes.
WARMUP: dict[str, str] = {
    "eng-spa": "I near known bore thanks drunk span fit till take care rotten included worn "
    "Windows WHO Levy. I was drunk.",
}

# Characters Apertium's stream format reserves (what apertium-destxt escapes).
_RESERVED = re.compile(r"([\\\[\]^$/<>@{}])")
_MARK = re.compile(r"(?<![\w\\])[*#@]+(?=\w)")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_BLANKS = re.compile(r"[\s\0]+")
_END = ".[]"


class ApertiumTranslator(Translator):
    """Translates word lists through a persistent Apertium pipeline (default pair ``eng-spa``).

    ``cache_size`` bounds the LRU cache of translations (keyed by the source text);
    ``timeout`` is how long the pipeline may stay silent during a batch before it is
    declared stuck. Use as a context manager, or call :meth:`close`, to end the pipeline
    early; it also ends with the object. One instance is safe to share between threads.
    """

    def __init__(
        self,
        pair: str = "eng-spa",
        cache_size: int = 200_000,
        timeout: float = 120.0,
        executable: str = "apertium",
    ) -> None:
        self.pair = pair
        self.cache_size = cache_size
        self.timeout = timeout
        self._script = _pipeline_script(executable, pair)
        self._cache: OrderedDict[str, list[str]] = OrderedDict()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = None
        self._lock = threading.Lock()

    def translate_batch(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        """One list of target words per source, in order; an empty source gives ``[]``."""
        texts = [_BLANKS.sub(" ", " ".join(words)).strip() for words in sources]
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t and t not in self._cache))
            fresh = dict(zip(todo, self._run(todo))) if todo else {}
            results = []
            for text in texts:
                if not text:
                    results.append([])
                elif text in fresh:
                    results.append(list(fresh[text]))
                else:
                    self._cache.move_to_end(text)
                    results.append(list(self._cache[text]))
            for text, words in fresh.items():
                self._cache[text] = words
                self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return results

    def close(self) -> None:
        """End the Apertium pipeline (a later call starts a new one)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                _kill(proc)
            if proc.stdout:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # at interpreter shutdown the modules close() needs may already be gone
        with contextlib.suppress(OSError, AttributeError, TypeError, ValueError):
            self.close()

    # --- the pipeline -------------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the pipeline
        # The script's $1 is the generator's option (-n: no unknown-word marks), $2 the
        # tagger's (none); the `apertium` command passes the same two.
        self._proc = subprocess.Popen(
            ["bash", "-c", self._script, "apertium", "-n", ""],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # its own process group, so a stuck pipeline dies whole
        )
        warmup = WARMUP.get(self.pair)
        if warmup:
            self._exchange([warmup])
        return self._proc

    def _run(self, texts: list[str]) -> list[list[str]]:
        self._start()
        return [_words(segment) for segment in self._exchange(texts)]

    def _exchange(self, texts: list[str]) -> list[str]:
        """Raw output segments for non-empty texts, one NUL-terminated segment each."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        payload = "".join(_RESERVED.sub(r"\\\1", t) + _END + "\0" for t in texts).encode()
        # Write and read at once, or both sides can block on full pipe buffers.
        writer = threading.Thread(target=_write, args=(proc, payload), daemon=True)
        writer.start()
        chunks: list[bytes] = []
        found = 0
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while found < len(texts):
                if not selector.select(timeout=self.timeout):
                    self._fail(f"Apertium produced nothing for {self.timeout:g} s")
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    self._fail("the Apertium pipeline stopped")
                chunks.append(chunk)
                found += chunk.count(b"\0")
        writer.join()
        segments = b"".join(chunks).decode("utf-8", errors="replace").split("\0")
        if found != len(texts) or segments[-1]:
            self._fail(f"Apertium returned {found} translations for {len(texts)} inputs")
        return segments[:-1]

    def _fail(self, what: str) -> None:
        message = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            message = self._stderr.read().decode("utf-8", errors="replace").strip()
        if self._proc is not None:
            _kill(self._proc)
        self.close()
        detail = f": {message.splitlines()[-1]}" if message else ""
        raise SimulpoError(f"{what} (pair {self.pair}){detail}")


def _pipeline_script(executable: str, pair: str) -> str:
    """The pair's pipeline as a bash script with every stage in null-flush mode."""
    hint = _INSTALL_HINT.format(pair=pair)
    path = shutil.which(executable)
    if path is None:
        raise SimulpoError(f"Apertium ('{executable}') is not installed: {hint}")
    bindir = Path(path).resolve().parent
    datadirs = [bindir.parent / "share" / "apertium", Path("/usr/share/apertium")]
    modes = [d / "modes" / f"{pair}.mode" for d in datadirs]
    mode = next((m for m in modes if m.is_file()), None)
    if mode is None:
        have = sorted({m.stem for d in datadirs for m in d.glob("modes/*.mode")})
        raise SimulpoError(
            f"Apertium has no language pair '{pair}' "
            f"(installed: {', '.join(have) or 'none'}): {hint}"
        )
    wblank = shutil.which("apertium-wblank-mode", path=f"{bindir}{os.pathsep}{os.defpath}")
    if wblank is None:
        raise SimulpoError(f"Apertium is too old (apertium-wblank-mode is missing): {hint}")
    try:
        return subprocess.run(
            [wblank, "-z", str(mode)], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SimulpoError(f"cannot read the Apertium mode {mode}: {exc}") from exc


def _write(proc: subprocess.Popen[bytes], payload: bytes) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.write(payload)
        proc.stdin.flush()
    except (OSError, ValueError):  # the pipeline died; the reader reports it
        pass


def _words(segment: str) -> list[str]:
    """Target words of one output segment: end marker, marks and escapes removed."""
    segment = segment.rstrip()
    if segment.endswith(_END):
        segment = segment[: -len(_END)]
    elif segment.endswith("[]"):  # the final period turned into something else: keep it
        segment = segment[:-2]
    return _ESCAPED.sub(r"\1", _MARK.sub("", segment)).split()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
