"""A tiny model and rollout batch for the GRPO tests, and the data-parallel worker.

Run as ``python grpo_dp_worker.py RANK WORLD INIT_FILE OUT``: one of ``WORLD`` CPU processes
(gloo, rendezvous through ``INIT_FILE``, so no port is taken) that runs ``grpo_update``
through ``accelerate`` on its share of the batch, for each loss type; rank 0 saves the
updated parameters and the stats to ``OUT``.
"""

from __future__ import annotations

import os
import sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from simulpo.train.grpo import LOSS_TYPES, GRPOConfig, grpo_update, token_logprobs
from simulpo.train.rollout import RolloutTensors

ADVANTAGES = [1.0, -1.0, 0.5, -0.5, 2.0, -2.0]


def tiny_model(seed: int = 0, vocab: int = 40) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=True, pad_token_id=0,
    )  # fmt: skip
    return Qwen2ForCausalLM(config).eval()


def random_batch(model, n: int = 6, width: int = 12, seed: int = 0) -> RolloutTensors:
    """Episodes of different lengths, policy tokens scattered, old log-probs the model's own
    perturbed by noise (so some ratios leave the clip range)."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    lengths = torch.randint(width // 2, width + 1, (n,), generator=g)
    attn = (torch.arange(width)[None] < lengths[:, None]).long()
    ids = torch.randint(1, vocab, (n, width), generator=g) * attn
    policy = (torch.rand(n, width, generator=g) < 0.6) & attn.bool()
    policy[:, :2] = False
    with torch.no_grad():
        logp = token_logprobs(model, ids, attn)
    old = torch.where(policy, logp + 0.3 * torch.randn(n, width, generator=g), 0.0)
    return RolloutTensors(ids, attn, policy, old)


def config(loss_type: str) -> GRPOConfig:
    return GRPOConfig(
        loss_type=loss_type, beta=0.05, num_iterations=2, micro_batch_size=2, max_grad_norm=0.5
    )


def update(loss_type: str, accelerator=None, share=slice(None)) -> dict:
    """Updated parameters and stats of a fresh tiny model after one ``grpo_update``."""
    model, ref = tiny_model(), tiny_model(seed=1)
    batch = random_batch(model)
    local = batch[share]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
    adv = torch.tensor(ADVANTAGES)[share]
    stats = grpo_update(model, opt, local, adv, config(loss_type), accelerator, ref_model=ref)
    bare = accelerator.unwrap_model(model) if accelerator is not None else model
    return {"params": [p.detach().clone() for p in bare.parameters()], "stats": stats}


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world)
    )
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == world, accelerator.state
    n = len(ADVANTAGES) // world
    results = {lt: update(lt, accelerator, slice(rank * n, (rank + 1) * n)) for lt in LOSS_TYPES}
    if rank == 0:
        torch.save(results, out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
