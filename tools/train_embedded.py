"""Train the small Russian GPT-2 that ships inside gptdesk (runs on CPU or GPU, resumes)."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

PAD, BOS, EOS = 0, 1, 2


@dataclass
class TrainConfig:
    n_embd: int = 384  # width; the embedding table is vocab x n_embd and dominates the file size
    n_layer: int = 7  # depth
    n_head: int = 6  # 64-wide heads
    n_positions: int = 512  # context window of the shipped model
    batch_size: int = 64  # sequences per step
    lr: float = 1.5e-3  # peak learning rate (AdamW); small models tolerate a high one
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup: float = 0.03  # fraction of the budget spent warming up
    weight_decay: float = 0.1
    dropout: float = 0.1  # the corpus is small: several epochs need regularisation
    time_budget: float = 1800.0  # seconds of training; the schedule follows elapsed time
    eval_every: float = 30.0  # seconds between validation checks
    seed: int = 1234


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenizer(folder: Path) -> ByteLevelBPETokenizer:
    return ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def encode_corpus(tokenizer: ByteLevelBPETokenizer, path: Path, cache: Path) -> np.ndarray:
    """All documents of a corpus file as one token stream, each document closed by EOS."""
    if cache.exists():
        return np.load(cache)
    docs = path.read_text(encoding="utf-8").split("\f")
    ids: list[int] = []
    for enc in tokenizer.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(EOS)
    arr = np.asarray(ids, dtype=np.uint16)
    np.save(cache, arr)
    return arr


@torch.no_grad()
def bits_per_char(
    model: GPT2LMHeadModel,
    tokenizer: ByteLevelBPETokenizer,
    docs: list[str],
    device: torch.device,
    ctx: int,
    stride: int | None = None,
) -> float:
    """Bits per character over whole documents, sliding windows so each token has context."""
    stride = stride or ctx // 2
    model.eval()
    total_nll = 0.0
    total_chars = 0
    for doc in docs:
        ids = [EOS, *tokenizer.encode(doc).ids]
        total_chars += len(doc)
        scored_to = 1  # positions [1, scored_to) already have a score; position 0 is the EOS prefix
        for begin in range(0, len(ids) - 1, stride):
            end = min(begin + ctx, len(ids))
            window = torch.tensor(ids[begin:end], device=device)[None]
            with autocast(device):
                logits = model(window).logits.float()
            logp = torch.log_softmax(logits[0, :-1], dim=-1)
            nll = -logp.gather(1, window[0, 1:, None])[:, 0]  # nll[j] scores position begin + 1 + j
            total_nll += float(nll[scored_to - begin - 1 :].sum())
            scored_to = end
            if end == len(ids):
                break
    model.train()
    return total_nll / math.log(2) / total_chars


def autocast(device: torch.device) -> torch.autocast:
    # bf16 on GPUs; on CPUs plain fp32 is both exact and, with 2 cores, not slower.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def lr_at(cfg: TrainConfig, progress: float) -> float:
    if progress < cfg.warmup:
        return cfg.lr * progress / cfg.warmup
    p = min(1.0, (progress - cfg.warmup) / (1 - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def build_model(cfg: TrainConfig, vocab_size: int) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def save_hf_folder(
    model: GPT2LMHeadModel, tokenizer_dir: Path, out: Path, shard: str | None, card: dict[str, object]
) -> None:
    """Write a standard Hugging Face folder: config, fp16 safetensors, tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    half = GPT2LMHeadModel(model.config)
    half.load_state_dict(model.state_dict())
    half = half.half()
    half.config.resid_pdrop = half.config.embd_pdrop = half.config.attn_pdrop = 0.0
    kwargs = {"max_shard_size": shard} if shard else {}
    half.save_pretrained(out, **kwargs)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=load_tokenizer(tokenizer_dir),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=model.config.n_positions,
    )
    tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(card, ensure_ascii=False, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--tokenizer", type=Path, default=Path("build/tokenizer16k"))
    parser.add_argument("--work", type=Path, default=Path("build/train"), help="checkpoints and caches")
    parser.add_argument("--out", type=Path, default=Path("src/gptdesk/models/embedded"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shard", default=None, help="max shard size, e.g. 15MB")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: the time budget only)")
    for name, field in TrainConfig.__dataclass_fields__.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(field.default), default=field.default)
    args = parser.parse_args()
    cfg = TrainConfig(**{k: getattr(args, k) for k in TrainConfig.__dataclass_fields__})
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    args.work.mkdir(parents=True, exist_ok=True)

    tokenizer = load_tokenizer(args.tokenizer)
    stream = encode_corpus(tokenizer, args.corpus / "train.txt", args.work / "train_ids.npy")
    # The last 1% of the stream is a validation slice for monitoring, never sampled for training.
    split = int(len(stream) * 0.99)
    train_ids = torch.from_numpy(stream[:split].astype(np.int64))
    val_ids = torch.from_numpy(stream[split:].astype(np.int64))
    print(f"train tokens {len(train_ids):,}, validation tokens {len(val_ids):,}, device {device}", flush=True)

    model = build_model(cfg, tokenizer.get_vocab_size()).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params:,} ({n_params * 2 / 1e6:.1f} MB in fp16)", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=device.type == "cuda",
    )

    ckpt_path = args.work / "checkpoint.pt"
    step, elapsed, best_val, tokens_seen = 0, 0.0, float("inf"), 0
    best_state: dict[str, torch.Tensor] | None = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["config"] == asdict(cfg):
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            step, elapsed, best_val, tokens_seen = ckpt["step"], ckpt["elapsed"], ckpt["best_val"], ckpt["tokens"]
            best_state = ckpt["best_state"]
            rng = np.random.default_rng(cfg.seed + step)
            print(f"resumed at step {step}, {elapsed:.0f}s done", flush=True)
        else:
            print("checkpoint is for another configuration; starting afresh", flush=True)

    def val_loss_exact() -> float:
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            # At most 64 windows: enough to see over-fitting, cheap enough to check often on a CPU.
            last = len(val_ids) - cfg.n_positions
            for i in range(0, last, max(cfg.n_positions, last // 64)):
                x = val_ids[i : i + cfg.n_positions][None].to(device)
                with autocast(device):
                    total += float(model(x, labels=x).loss) * (cfg.n_positions - 1)
                count += cfg.n_positions - 1
        model.train()
        return total / max(count, 1)

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "config": asdict(cfg),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "best_val": best_val,
                "best_state": best_state,
                "tokens": tokens_seen,
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    model.train()
    started = time.monotonic() - elapsed
    last_eval = elapsed
    last_ckpt = time.monotonic()
    log: list[dict[str, float]] = []
    while elapsed < cfg.time_budget and not (args.max_steps and step >= args.max_steps):
        lr = lr_at(cfg, elapsed / cfg.time_budget)
        for group in opt.param_groups:
            group["lr"] = lr
        starts = rng.integers(0, len(train_ids) - cfg.n_positions - 1, cfg.batch_size)
        x = torch.stack([train_ids[s : s + cfg.n_positions] for s in starts]).to(device, non_blocking=True)
        with autocast(device):
            loss = model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += x.numel()
        elapsed = time.monotonic() - started
        last_step = elapsed >= cfg.time_budget or step == args.max_steps
        if elapsed - last_eval >= cfg.eval_every or last_step:
            last_eval = elapsed
            v = val_loss_exact()
            if v < best_val:
                best_val = v
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            entry = {
                "step": step,
                "elapsed": round(elapsed, 1),
                "train_loss": round(loss.item(), 4),
                "val_loss": round(v, 4),
                "lr": lr,
                "epochs": round(tokens_seen / len(train_ids), 2),
            }
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if time.monotonic() - last_ckpt > 120:
            save_checkpoint()
            last_ckpt = time.monotonic()
    save_checkpoint()

    if best_state is not None:
        model.load_state_dict(best_state)
    card: dict[str, object] = {
        "config": asdict(cfg),
        "parameters": n_params,
        "steps": step,
        "tokens_seen": tokens_seen,
        "epochs": tokens_seen / len(train_ids),
        "train_seconds": elapsed,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "best_val_loss": best_val,
        "log": log,
    }
    save_hf_folder(model, args.tokenizer, args.out, args.shard, card)
    print(f"wrote {args.out}", flush=True)
    heldout_docs = (args.corpus / "heldout.txt").read_text(encoding="utf-8").split("\f")
    card["heldout_bits_per_char"] = bits_per_char(model, tokenizer, heldout_docs, device, cfg.n_positions)
    print(f"held-out bits per character: {card['heldout_bits_per_char']:.4f}", flush=True)
    (args.out / "training.json").write_text(json.dumps(card, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
