"""Exports all-MiniLM-L6-v2 from the package's weights to an ONNX Runtime graph.

Run as a child process (``python -m omnichat.rag.embedders.onnx_export --source DIR --output
FILE --precision fp32``) so that the serving process never imports torch: torch loads the
weights (safetensors, from DIR only), ``torch.onnx`` traces the encoder, and ONNX Runtime's BERT
optimizer fuses it (EmbedLayerNormalization, Attention, BiasGelu, SkipLayerNormalization).
``int8`` then quantizes the weights of the matrix products (dynamic quantization, per channel,
7-bit range: CPUs without VNNI saturate the 8-bit u8*s8 products, and the reduced range kept
every SciFact vector closer to torch's; see BENCHMARKS.md).

The graph's inputs are ``input_ids`` and ``attention_mask`` (int64, batch x sequence), its
output ``last_hidden_state`` (float32, batch x sequence x 384): pooling stays outside, in
``local_onnx``, exactly as sentence-transformers pools. The encoder is written out here in the
shape of Hugging Face's classic BERT code (the pattern the optimizer's fusions recognise);
``verify`` checks it against the model's own forward pass before anything is exported.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

# No network, whatever the caller's environment says.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

OPSET = 17
PRECISIONS = ("fp32", "int8")


def _encoder_module(model: Any) -> Any:
    import torch

    config = model.config
    heads = int(config.num_attention_heads)
    head_size = int(config.hidden_size) // heads

    class Encoder(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            embeddings = self.bert.embeddings
            positions = embeddings.position_ids[:, : input_ids.size(1)]
            token_types = torch.zeros_like(input_ids)
            x = (
                embeddings.word_embeddings(input_ids)
                + embeddings.token_type_embeddings(token_types)
                + embeddings.position_embeddings(positions)
            )
            x = embeddings.LayerNorm(x)
            mask = attention_mask[:, None, None, :].to(x.dtype)
            mask = (1.0 - mask) * -10000.0

            def heads_first(t: Any) -> Any:
                return t.view((*t.size()[:-1], heads, head_size)).permute(0, 2, 1, 3)

            for layer in self.bert.encoder.layer:
                attention = layer.attention.self
                query = heads_first(attention.query(x))
                key = heads_first(attention.key(x))
                value = heads_first(attention.value(x))
                scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(head_size)
                probabilities = torch.nn.functional.softmax(scores + mask, dim=-1)
                context = torch.matmul(probabilities, value).permute(0, 2, 1, 3).contiguous()
                context = context.view((*context.size()[:-2], heads * head_size))
                out = layer.attention.output
                x = out.LayerNorm(out.dense(context) + x)
                hidden = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x))
                out = layer.output
                x = out.LayerNorm(out.dense(hidden) + x)
            return x

    return Encoder(model).eval()


def verify(model: Any, encoder: Any) -> None:
    """The rewritten encoder computes what the model does (padding included)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (3, 40), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 3:] = 0
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = encoder(ids, mask)
    error = float(((expected - got) * mask[:, :, None]).abs().max())
    if error > 1e-4:
        raise RuntimeError(f"the rewritten encoder differs from the model by {error}")


def export(source: Path, output: Path, precision: str) -> None:
    import torch
    from transformers import AutoModel

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    model = AutoModel.from_pretrained(
        str(source), local_files_only=True, attn_implementation="eager"
    ).eval()
    encoder = _encoder_module(model)
    verify(model, encoder)
    raw = output.with_name(output.name + ".raw.onnx")
    fused = output.with_name(output.name + ".fused.onnx")
    try:
        ids = torch.randint(1000, 2000, (2, 16))
        mask = torch.ones_like(ids)
        names = ["input_ids", "attention_mask", "last_hidden_state"]
        with torch.inference_mode():
            torch.onnx.export(
                encoder,
                (ids, mask),
                str(raw),
                dynamo=False,
                input_names=names[:2],
                output_names=names[2:],
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
                opset_version=OPSET,
                do_constant_folding=True,
            )
        from onnxruntime.transformers import optimizer

        config = model.config
        optimized = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # the Python fusions only; ONNX Runtime optimizes further at load
            use_gpu=False,
        )
        fusions = optimized.get_fused_operator_statistics()
        for op, count in (("Attention", config.num_hidden_layers), ("EmbedLayerNormalization", 1)):
            if fusions.get(op) != count:
                raise RuntimeError(f"expected {count} fused {op} nodes, got {fusions}")
        if precision == "fp32":
            optimized.save_model_to_file(str(output))
            return
        optimized.save_model_to_file(str(fused))
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(fused),
            str(output),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1},
        )
    finally:
        raw.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the model's folder")
    parser.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    args = parser.parse_args(argv)
    # Everything this child writes lies in the (private) model cache: its own intermediate files
    # too, which torch and ONNX Runtime create with the default mode.
    os.umask(0o077)
    export(args.source, args.output, args.precision)


if __name__ == "__main__":
    main()
    sys.exit(0)
