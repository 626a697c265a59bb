"""configs/real-text.yaml end to end on the real SmolLM2-135M (tiny sizes: the plumbing,
not the numbers): zero-shot, LoRA SFT, SeqPO, the same LLM offline and the Apertium rows,
all on the same Bible verses, with one system prompt naming the languages everywhere."""

import json
import shutil
from pathlib import Path

import pytest
from real_models import SMOLLM2, require

from simulpo.policies.build import PolicySpec, build_policy
from simulpo.recipes.demo import run_demo
from simulpo.stream.settings import StreamConfig, load_stream

CONFIG = Path(__file__).parents[2] / "configs" / "real-text.yaml"
TINY = [
    f"model.lm={SMOLLM2}", "model.dtype=float32", "data.train=20", "data.sentences=2",
    "synthesis.align_context=200", "sft.save_every=0", "rl.steps=1", "rl.sources_per_step=2",
    "rl.group_size=2", "rl.eval_segments=1", "rl.max_piece_tokens=3", "rl.max_final_tokens=6",
    "eval.test_segments=2", "eval.max_piece_tokens=3", "eval.max_new_tokens=6",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium is not installed")
def test_the_real_recipe_runs_on_a_real_model_with_one_prompt_and_resumes(tmp_path):
    require(SMOLLM2)
    rows = run_demo(tmp_path, config=CONFIG, overrides=TINY, progress=False)
    apertium = [f"apertium-{n}" for n in ("wait-1", "wait-3", "wait-5", "wait-7", "la-2", "offline")]
    assert [r["name"] for r in rows] == ["zero-shot", "sft", "seqpo", "offline", *apertium]
    assert {(r["dataset"], r["segments"]) for r in rows} == {("bible", 2)}

    # SFT labels, the trained policies and the zero-shot row share one prompt naming both
    # languages; a policy directory brings it to `simulpo eval` and `simulpo serve`.
    prompt = StreamConfig(source_lang="en", target_lang="es").prompts()[0]
    assert "English" in prompt and "Spanish" in prompt
    for split in ("train", "dev"):
        for line in (tmp_path / "sft_data" / f"{split}.jsonl").read_text().splitlines():
            assert json.loads(line)["messages"][0] == {"role": "system", "content": prompt}
    for step in ("sft", "seqpo"):
        final = tmp_path / step / "final"
        assert load_stream(final).prompts()[0] == prompt
        assert build_policy(PolicySpec(kind="llm", model=final)).system_prompt == prompt
    zero_shot = (tmp_path / "bible" / "zero-shot" / "instances.log").read_text().splitlines()
    verses = (tmp_path / "corpus" / "test.jsonl").read_text().splitlines()[:2]
    assert [json.loads(x)["source"] for x in zero_shot] == [json.loads(v)["source"] for v in verses]
    assert all(len(json.loads(v)["source"].split()) <= 12 for v in verses)  # data.max_words

    # A second run finds every step done: nothing is trained or evaluated again.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")}
    again = run_demo(tmp_path, config=CONFIG, overrides=TINY, progress=False)
    assert [r["BLEU"] for r in again] == [r["BLEU"] for r in rows]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
