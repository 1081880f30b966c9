"""Quantization stage: calibrated int8 post-training quantization and fake-quant QAT at 2..8 bits.

`registry.QUANTIZERS` holds the families (`ort-qdq`, `litert-pt2e`, `fake-quant`); `ptq` drives a
post-training rule (quantize, measure in the real runtime, write the sidecar JSON); `qat` fine-tunes
with fake quantization and writes the bit-width sweep.
"""

#: `quantize.qat` keys that only choose jobs (which bit pairs, from which variants, at all): the QAT
#: trainer (`quantize.qat`) never reads them, so editing them reruns no existing QAT job
QAT_JOB_KEYS = ("bits", "variants", "enabled")
