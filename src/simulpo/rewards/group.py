"""Group statistics shared by the rewards: z-scores and the handling of non-finite scores.

A *group* is the ``B`` episodes sampled for one source; every reward normalizes its terms
within the group, so only how an episode compares with its siblings matters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from simulpo.rewards.base import RewardResult

__all__ = ["fuse", "replace_nonfinite", "zscore"]

logger = logging.getLogger(__name__)

#: a spread below this fraction of the values' magnitude is rounding noise, not signal:
#: the mean of three copies of 0.1 is not exactly 0.1, and dividing that noise by its own
#: tiny std would turn identical episodes into z-scores of +-1.
_RELATIVE_TOL = 1e-9


def zscore(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(x - mean(x)) / std(x)`` over the group, with the *population* std (``ddof=0``).

    Population, not sample, std: the group is the whole population being compared (the
    ``B`` episodes of this update), not a sample from which to estimate a wider spread;
    it is also what GRPO implementations and HPO's code use (``np.std``), and it stays
    defined for a group of one. When the std is 0 (all values equal, up to rounding) there
    is no division: the result is ``x - mean(x)``, i.e. zeros, so a term on which every
    episode ties contributes nothing instead of NaN or amplified rounding noise.
    Values must be finite (see :func:`replace_nonfinite`).
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return x.copy()
    if not np.isfinite(x).all():
        raise ValueError("zscore needs finite values; replace non-finite ones first")
    centered = x - x.mean()
    std = float(np.sqrt(np.mean(centered**2)))
    scale = float(np.max(np.abs(x)))
    if std <= _RELATIVE_TOL * max(scale, 1e-300):
        return np.zeros_like(x)
    return centered / std


def replace_nonfinite(
    values: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool,
    fallback: float | Sequence[float] | np.ndarray,
    name: str,
) -> tuple[np.ndarray, int]:
    """Replace NaN and +-inf by the group's worst finite value; return the values and a count.

    A non-finite score means a scorer broke (an undefined latency, a model that returned
    NaN), not an extraordinary translation, so even ``+inf`` quality is treated as bad: the
    episode ranks with the group's worst, and never poisons the z-scores of the others.
    The worst is the minimum when ``higher_is_better`` (quality), else the maximum
    (latency). When no value of the group is finite, ``fallback`` is used (one value per
    episode, or one for all): the caller's documented worst constant. Replacements are
    logged as one warning naming ``name``.
    """
    x = np.array(values, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return x, 0
    if n_bad < x.size:
        good = x[~bad]
        worst = float(good.min() if higher_is_better else good.max())
        x[bad] = worst
        how = f"the group's worst finite value ({worst:.4g})"
    else:
        fill = np.broadcast_to(np.asarray(fallback, dtype=np.float64), x.shape)
        if not np.isfinite(fill).all():
            raise ValueError(f"the fallback {name} must be finite")
        x[:] = fill
        how = "the documented worst value (none in the group was finite)"
    logger.warning(
        "%d of %d episodes of a group have a non-finite %s (NaN or inf); replaced by %s.",
        n_bad,
        x.size,
        name,
        how,
    )
    return x, n_bad


def fuse(
    quality: np.ndarray,
    latency: np.ndarray,
    weight: float,
    /,
    *,
    higher_is_better: bool,
    stats: dict[str, float],
    **fields,
) -> RewardResult:
    """``z(quality) - weight * z(latency)`` within the group, with the logged means.

    Both rewards end this way (SeqPO: the truncated latency and lambda; HPO: the gated
    latency and w); ``stats`` adds their own counts, ``fields`` the rest of the result
    (``quality`` there is the score as the metric gave it, before any replacement).
    """
    q_norm = zscore(quality if higher_is_better else -quality)
    l_norm = zscore(latency)
    rewards = q_norm - weight * l_norm
    means = {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "quality_mean": float(np.mean(quality)),
        "latency_mean": float(latency.mean()),
    }
    return RewardResult(
        rewards=rewards,
        latency=latency,
        quality_norm=q_norm,
        latency_norm=l_norm,
        stats=means | stats,
        **fields,
    )
