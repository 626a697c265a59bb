"""The page in a real browser (Debian's Chromium, headless, fake microphone from a WAV):
microphone and WAV-file streams show the server's translation, the tentative tail greyed,
and the latency read-out moves."""

import numpy as np
import pytest
from page_driver import CHROMIUM, DRIVER, browser, text, wait_for

from simulpo.data.audio import read_audio, write_audio
from simulpo.serve.metrics_log import MetricsLog, read_metrics_log
from simulpo.stream.loop import run_stream
from simulpo.stream.segmenter import FixedMilliseconds

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromium-driver"),
]


class Level:
    """Writes each chunk's summed |int16| level (the text depends on every sample) and
    keeps a one-word hypothesis past it, shown as the tentative tail."""

    name = "level"

    def act(self, states):
        pieces = []
        for s in states:
            pieces.append(str(int(np.abs(np.rint(s.new_chunk * 32768)).sum())))
            s.memory["history"] = [[*s.target, pieces[-1], "…"]]
        return pieces


@pytest.fixture
def wavs(tmp_path):
    rng = np.random.default_rng(5)
    mic = write_audio(tmp_path / "mic.wav", rng.normal(0, 0.2, 16000 * 4).clip(-1, 1))
    clip = write_audio(tmp_path / "clip.wav", rng.normal(0, 0.2, 12345).clip(-1, 1))
    return mic, clip


def test_page_streams_the_microphone_and_a_wav_file(serve, wavs, tmp_path):
    mic, clip = wavs
    log = tmp_path / "metrics.jsonl"
    _, url = serve(Level(), MetricsLog(log), chunk_ms=200)
    with browser(mic) as driver:
        driver.get(url + "/")
        wait_for(driver, lambda d: "policy level" in text(d, "info"))
        driver.find_element("id", "start").click()
        wait_for(driver, lambda d: len(text(d, "committed").split()) >= 3)
        assert text(driver, "tentative") == "…"  # greyed by the page's style
        assert text(driver, "trail").endswith("ms")
        driver.find_element("id", "stop").click()
        wait_for(driver, lambda d: text(d, "state") == "done")
        [mic_stream] = read_metrics_log(log)
        assert text(driver, "committed") == mic_stream["prediction"]
        colour = driver.find_element("id", "tentative").value_of_css_property("color")
        assert colour != driver.find_element("id", "committed").value_of_css_property("color")

        driver.find_element("id", "wav").send_keys(str(clip))
        wait_for(driver, lambda d: text(d, "state") == "done" and text(d, "committed"))
        [episode] = run_stream([read_audio(clip)], Level(), FixedMilliseconds(200), progress=False)
        assert text(driver, "committed") == episode.prediction
        driver.save_screenshot(str(tmp_path / "page.png"))
