"""A Chinese target: every place that joins the served pieces joins them without spaces
(the replies' tentative tail, the HTTP protocol's strings, the metrics log, `simulpo stream`)."""

import json
import urllib.request

from serve_helpers import exchange, run, ws_url

from simulpo.cli import main
from simulpo.policies.schedules import LocalAgreement
from simulpo.serve.metrics_log import MetricsLog, read_metrics_log
from simulpo.translators.base import Translator

ZH = {"i": "我", "love": "爱", "you": "你们"}


class Chinese:
    """A text policy writing the Chinese of each word it reads, at once."""

    name = "zh"

    def act(self, states):
        return ["".join(ZH[w] for w in s.new_chunk) for s in states]


def test_pieces_of_a_chinese_target_join_without_spaces(serve, tmp_path, capsys):
    log = tmp_path / "metrics.jsonl"
    _, url = serve(Chinese(), MetricsLog(log), mode="text", unit="char", target_lang="zh")
    frames = [{"target_lang": "zh"}, {"text": "i love you"}, {"end_of_stream": True}]
    replies = run(exchange(url, frames))
    assert [r.get("new") for r in replies] == ["我", "爱", "你们", None]
    assert read_metrics_log(log, "zh")[0]["prediction"] == "我爱你们"
    assert read_metrics_log(log)[0]["prediction"] == "我 爱 你 们"  # chars, space-joined

    request = urllib.request.Request(
        url + "/tokens_to_string", json.dumps({"tokens": ["我", "爱", "你们"]}).encode()
    )
    request.get_method = lambda: "GET"
    with urllib.request.urlopen(request, timeout=10) as r:
        assert json.load(r) == {"tokens_as_string": "我爱你们"}

    text = tmp_path / "talk.txt"
    text.write_text("i love you\n")
    assert main(["stream", str(text), "--url", ws_url(url), "--target-lang", "zh"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "我爱你们"


class ChineseWords(Translator):
    def translate_batch(self, sources):
        return [[ZH[w] for w in src] for src in sources]


def test_the_tentative_tail_of_a_chinese_target_has_no_spaces(serve):
    _, url = serve(LocalAgreement(ChineseWords(), 2), mode="text", chunk_words=2, target_lang="zh")
    replies = run(exchange(url, [{"text": "i love you"}, {"end_of_stream": True}]))
    # chunk 1 = "i love": one hypothesis, nothing agreed yet: all of it is tentative
    assert replies[0]["new"] == "" and replies[0]["tentative"] == "我爱"
