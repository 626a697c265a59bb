"""The WebSocket protocol in text mode, against the offline loop on the same sources."""

from serve_helpers import exchange, run

from simulpo.policies.schedules import LocalAgreement, WaitK
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedWords


def offline(policy, words, m=1):
    [episode] = run_stream([words], policy, FixedWords(m), progress=False)
    return episode.pieces


def test_text_stream_equals_the_offline_loop(serve, upper):
    words = ["the", "dog", "sees", "a", "big", "old", "house", "near", "the", "river"]
    _, url = serve(WaitK(upper, 3), mode="text")
    frames = [{"text": w} for w in words] + [{"end_of_stream": True}]
    replies = run(exchange(url, frames))
    assert replies[-1] == {"end_of_processing": True}
    pieces = [r["new"] for r in replies[:-1]]
    assert pieces == offline(WaitK(upper, 3), words)
    assert all(r["deleted"] == "" for r in replies[:-1])
    assert [r["words"] for r in replies[:-1]] == [float(i) for i in range(1, len(words) + 1)]


def test_local_agreement_sends_its_tentative_tail(serve, upper):
    words = ["a", "b", "c", "d"]
    _, url = serve(LocalAgreement(upper, 2), mode="text", chunk_words=2)
    replies = run(exchange(url, [{"text": "a b c"}, {"text": "d"}, {"end_of_stream": True}]))
    # chunk 1 = "a b": one hypothesis, nothing agreed yet, "A B" tentative;
    # chunk 2 = "c d" (last): the rest of the translation.
    assert [r.get("new") for r in replies] == ["", "A B C D", None]
    assert replies[0]["tentative"] == "A B" and replies[1]["tentative"] == ""
    assert [r["new"] for r in replies[:-1]] == offline(LocalAgreement(upper, 2), words, m=2)
