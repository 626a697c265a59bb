"""A stand-in for librosa in simulstream's processes (tests only).

simulstream's message processor imports librosa at module level but calls only
``librosa.resample`` (for clients not at 16 kHz). librosa pulls numba, scipy and
scikit-learn, which simulpo needs nowhere else, so the tests hand simulstream this module
instead; it resamples with soxr, librosa's own default resampler ("soxr_hq").
"""

import numpy as np
import soxr


def resample(y, *, orig_sr, target_sr, **_):
    return soxr.resample(np.asarray(y, dtype=np.float32), orig_sr, target_sr, quality="HQ")
