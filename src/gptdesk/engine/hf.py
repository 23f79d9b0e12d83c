"""The reference engine: Hugging Face transformers' generate() on torch, exactly as the hobby script ran it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gptdesk.engine.base import Alternative, Capabilities, FinishReason, ModelInfo, StreamEvent, TokenPiece
from gptdesk.engine.core import (
    Clock,
    PreparedPrompt,
    SequenceOutput,
    alternatives,
    bad_words_ids,
    choose_seed,
    finished,
    fitted_prompt,
    prepare_prompt,
)
from gptdesk.engine.tokens import piece_text, tokenize
from gptdesk.errors import (
    DamagedAdapterError,
    EngineError,
    GptDeskError,
    InvalidInputError,
    ModelCorruptError,
)
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.adapters import check_base, load_adapter
from gptdesk.models.cost import CostEstimate, check_affordable, estimate
from gptdesk.models.locate import ResolvedModel, read_config, weight_files
from gptdesk.models.obtain import obtain
from gptdesk.models.shape import ModelShape
from gptdesk.models.tokenizer import load_tokenizer
from gptdesk.settings.generation import GenerationSettings

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


def pick_device(device: str) -> str:
    import torch

    if device not in DEVICES:
        raise InvalidInputError(
            Text(
                f"device = '{device}' is unknown: use one of {', '.join(DEVICES)}.",
                f"device = «{device}» неизвестно: используйте одно из {', '.join(DEVICES)}.",
            )
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            Text(
                "device = 'cuda' was asked for, but this computer has no CUDA GPU that torch can use. "
                "Use device 'cpu' or 'auto'.",
                "Запрошено device = «cuda», но на этом компьютере нет GPU CUDA, доступного torch. "
                "Используйте «cpu» или «auto».",
            )
        )
    return device


def pick_dtype(dtype: str, device: str) -> str:
    if dtype not in DTYPES:
        raise InvalidInputError(
            Text(
                f"dtype = '{dtype}' is unknown: use one of {', '.join(DTYPES)}.",
                f"dtype = «{dtype}» неизвестен: используйте один из {', '.join(DTYPES)}.",
            )
        )
    if dtype != "auto":
        return dtype
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    # On a CPU float32 is exact and fast; bfloat16 halves memory but is emulated on most CPUs.
    return "float32"


class _Cancelled(threading.Event):
    """Set by a stop string or by a consumer that walked away (the user's Stop is its own event)."""


def _stopping_criteria(cancel: threading.Event, stop_flag: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria

    class CancelCriterion(StoppingCriteria):
        """Stop at the next token boundary once Stop is pressed (style: gpt4all m_stopGenerating)."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = cancel.is_set() or stop_flag.is_set()
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return CancelCriterion()


class _Recorder:
    """A logits processor that keeps the step's log-probabilities for the streamer (one sequence).

    It runs after repetition penalty, no-repeat n-grams and min-length (which ban tokens) and
    before temperature, top-k and top-p: a token's log-probability is the model's distribution
    under the settings' constraints, as on every engine (docs/fast-engine.md).
    """

    def __init__(self) -> None:
        self.logprobs: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self.logprobs = torch.log_softmax(scores[0].float(), dim=-1)
        return scores


class _BatchRecorder:
    """The same log-probabilities for every row of a multi-sequence or beam-search generate().

    Rows are known by their generated tokens so far, so beams that generate() reorders are followed
    without its beam indices. A step's full rows are kept only until the next step shows which
    token each row went on with; the end-of-text log-probability of every row is kept for the
    hypotheses that end there. No extra forward pass is needed.
    """

    def __init__(self, prompt_len: int, eos_id: int | None, top_n: int, clock: Clock) -> None:
        self.prompt_len = prompt_len
        self.eos_id = eos_id
        self.top_n = top_n
        self.clock = clock
        self.chosen: dict[tuple[int, ...], float] = {}  # generated ids -> the last one's log-probability
        self.ended: dict[tuple[int, ...], float] = {}  # prefix -> log-probability of end-of-text after it
        self.alts: dict[tuple[int, ...], Any] = {}  # prefix -> (values, ids) of the best tokens after it
        self.last: dict[tuple[int, ...], Any] = {}  # prefix -> the latest step's log-probability row

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logprobs = torch.log_softmax(scores.float(), dim=-1)
        keys = [tuple(row) for row in input_ids[:, self.prompt_len :].tolist()]
        for key in keys:
            if key and key not in self.chosen:
                parent = self.last.get(key[:-1])
                if parent is not None:
                    self.chosen[key] = float(parent[key[-1]])
        self.last = {}
        for r, key in enumerate(keys):
            self.last[key] = logprobs[r]
            if self.eos_id is not None:
                self.ended[key] = float(logprobs[r, self.eos_id])
            if self.top_n > 0:
                values, indices = torch.topk(logprobs[r], self.top_n)
                self.alts[key] = (values.tolist(), indices.tolist())
        self.clock.step_done()
        return scores

    def logprob(self, generated: list[int], i: int) -> float | None:
        key = tuple(generated[: i + 1])
        if key in self.chosen:
            return self.chosen[key]
        parent = self.last.get(key[:-1])
        if parent is not None:
            return float(parent[key[-1]])
        if key[-1] == self.eos_id:
            return self.ended.get(key[:-1])
        return None

    def alternatives(self, generated: list[int], i: int, piece: Any) -> tuple[Alternative, ...]:
        found = self.alts.get(tuple(generated[:i]))
        if found is None:
            return ()
        values, indices = found
        return tuple(Alternative(int(t), piece(int(t)), float(v)) for v, t in zip(values, indices, strict=True))


class TransformersEngine:
    """GPT-2-family models through transformers' generate(); the semantics every other engine matches."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, info: ModelInfo, shape: ModelShape) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.info = info
        self.shape = shape
        self._lock = threading.Lock()  # one generation at a time per loaded model

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        name: str | Path | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        progress: ProgressCallback | None = None,
        check_memory: bool = True,
        allow_download: bool = True,
        adapter: str | None = None,
    ) -> TransformersEngine:
        """Load a model by catalog name, hub id or folder (None: the embedded model), with a LoRA adapter."""

        def report(en: str, ru: str, fraction: float | None) -> None:
            if progress is not None:
                progress(Text(en, ru), fraction)

        report("Looking for the model", "Поиск модели", 0.0)
        resolved = obtain(name, allow_download=allow_download)
        return cls.load_resolved(
            resolved, device=device, dtype=dtype, progress=progress, check_memory=check_memory, adapter=adapter
        )

    @classmethod
    def load_resolved(
        cls,
        resolved: ResolvedModel,
        *,
        device: str = "auto",
        dtype: str = "auto",
        progress: ProgressCallback | None = None,
        check_memory: bool = True,
        adapter: str | None = None,
    ) -> TransformersEngine:
        import torch
        from transformers import GPT2LMHeadModel
        from transformers.utils import logging as hf_logging

        # The library's own tqdm bar would write to the terminal behind the app's back.
        hf_logging.disable_progress_bar()

        def report(en: str, ru: str, fraction: float | None) -> None:
            if progress is not None:
                progress(Text(en, ru), fraction)

        config = read_config(resolved.path)
        shape = ModelShape.from_config(config)
        dev = pick_device(device)
        dt = pick_dtype(dtype, dev)
        if check_memory:
            # Weights plus a short generation must fit before anything is read from disk.
            check_affordable(estimate(shape, dtype=dt, prompt_tokens=16, max_new_tokens=16), weights_loaded=False)
        report("Reading the tokenizer", "Чтение токенизатора", 0.1)
        tokenizer = load_tokenizer(resolved.path)
        report("Reading the weights", "Чтение весов", 0.2)
        try:
            model: Any = GPT2LMHeadModel.from_pretrained(resolved.path, dtype=getattr(torch, dt))
        except Exception as exc:  # safetensors, torch and transformers each raise their own types
            files = ", ".join(p.name for p in weight_files(resolved.path))
            raise ModelCorruptError(
                Text(
                    f"The weights in {resolved.path} ({files}) cannot be loaded: {exc}. The files may be "
                    "incomplete or damaged; download or copy the model again.",
                    f"Веса в {resolved.path} ({files}) не загружаются: {exc}. Файлы, возможно, неполные "
                    "или повреждены; скачайте или скопируйте модель заново.",
                )
            ) from exc
        for tensor_name, tensor in model.named_parameters():
            # NaN weights load without complaint, then fail inside generate() or produce garbage. A sum
            # is NaN when any element is and costs a fraction of isnan(): only then look closer.
            if not torch.isfinite(tensor.sum(dtype=torch.float32)) and torch.isnan(tensor).any():
                from gptdesk.errors import DamagedWeightsError

                raise DamagedWeightsError(resolved.path, tensor_name)
        applied = None
        if adapter is not None:
            report("Applying the adapter", "Применение адаптера", 0.9)
            applied = load_adapter(adapter)
            check_base(applied, resolved.model_id, resolved.revision)
            model = apply_lora(model, applied.path)
        model.to(dev)
        model.eval()
        report("Ready", "Готово", 1.0)
        info = ModelInfo(
            model_id=resolved.model_id,
            source=str(resolved.path),
            revision=resolved.revision,
            engine=cls.name,
            device=dev,
            dtype=dt,
            n_params=int(sum(p.numel() for p in model.parameters())),
            n_layer=shape.n_layer,
            n_embd=shape.n_embd,
            n_head=shape.n_head,
            n_positions=shape.n_positions,
            vocab_size=shape.vocab_size,
            adapter=applied.name if applied else None,
            adapter_digest=applied.digest if applied else None,
        )
        return cls(model, tokenizer, info, shape)

    def close(self) -> None:
        self._model = None
        self._tokenizer = None

    def __enter__(self) -> TransformersEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ----------------------------------------------------------------------------------

    @property
    def kept_tokens(self) -> int:
        """The reference engine keeps no cache between calls."""
        return 0

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def tokenize(self, text: str) -> list[TokenPiece]:
        return tokenize(self._tokenizer, text)

    def piece(self, token_id: int) -> str:
        return piece_text(self._tokenizer, token_id)

    # -- generation ------------------------------------------------------------------------------

    def next_logits(self, ids: list[int]) -> Any:
        """The model's raw scores (a float32 numpy vector) for the token after `ids` (for scoring and the lab)."""
        import torch

        if self._model is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        if not ids or len(ids) >= self.info.n_positions:
            raise InvalidInputError(
                Text(
                    f"{len(ids)} token ids: give between 1 and {self.info.n_positions - 1}.",
                    f"{len(ids)} токенов: нужно от 1 до {self.info.n_positions - 1}.",
                )
            )
        with self._lock, torch.inference_mode():
            full = torch.tensor([ids], device=self._model.device)
            return self._model(full).logits[0, -1].float().cpu().numpy()

    def token_logprobs(self, prompt_ids: list[int], ids: list[int]) -> Any:
        """The raw log-probability of each of `ids` after `prompt_ids` (a float32 numpy vector; for the lab)."""
        if self._model is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        if not prompt_ids or len(prompt_ids) + len(ids) > self.info.n_positions:
            raise InvalidInputError(
                Text(
                    f"{len(prompt_ids)} + {len(ids)} token ids: give a prompt and at most "
                    f"{self.info.n_positions} tokens in all.",
                    f"{len(prompt_ids)} + {len(ids)} токенов: нужна затравка и не больше "
                    f"{self.info.n_positions} токенов всего.",
                )
            )
        import numpy as np
        import torch

        if not ids:
            return np.zeros(0, dtype=np.float32)
        with self._lock, torch.inference_mode():
            full = torch.tensor([prompt_ids + ids], device=self._model.device)
            logits = self._model(full).logits[0, len(prompt_ids) - 1 : -1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
        return logprobs[torch.arange(len(ids)), torch.tensor(ids)].cpu().numpy()

    def prepare(self, prompt: str, settings: GenerationSettings) -> PreparedPrompt:
        """Prompt ids (cut to fit the context), min and max new tokens, and notices to show."""
        return prepare_prompt(self._tokenizer, self.info.n_positions, prompt, settings)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(local=True, beam_search=True, batched=False, logprobs=True)

    def check(self, prompt: str, settings: GenerationSettings) -> CostEstimate:
        """The cost of this generation; raises when it cannot run (see Engine.check)."""
        return self._check(self.prepare(prompt, settings), settings)

    def _check(self, prep: PreparedPrompt, settings: GenerationSettings) -> CostEstimate:
        cost = self._estimate(len(prep.ids), prep.max_new, settings)
        check_affordable(cost, weights_loaded=True)
        return cost

    def cost(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate:
        max_new = settings.resolve_lengths(prompt_tokens)[1]
        return self._estimate(fitted_prompt(prompt_tokens, max_new, self.info.n_positions), max_new, settings)

    def _estimate(self, prompt_tokens: int, max_new: int, settings: GenerationSettings) -> CostEstimate:
        return estimate(
            self.shape,
            dtype=self.info.dtype,
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new,
            num_beams=settings.num_beams,
            num_return_sequences=settings.num_return_sequences,
            do_sample=settings.do_sample,
        )

    def generate_kwargs(self, settings: GenerationSettings, min_new: int, max_new: int) -> dict[str, Any]:
        """The generate() arguments for these settings, as the hobby script would pass them."""
        kwargs: dict[str, Any] = {
            "do_sample": settings.do_sample,
            "num_beams": settings.num_beams,
            "num_return_sequences": settings.num_return_sequences,
            "max_new_tokens": max_new,
            "min_new_tokens": min_new,
            "repetition_penalty": settings.repetition_penalty,
            "no_repeat_ngram_size": settings.no_repeat_ngram_size,
            "pad_token_id": self._pad_id(),
            "eos_token_id": self._tokenizer.eos_token_id,
        }
        if settings.do_sample:
            kwargs.update(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
        if settings.num_beams > 1:  # beam-only knobs: generate() warns about them otherwise
            kwargs.update(length_penalty=settings.length_penalty, early_stopping=settings.early_stopping)
        banned = bad_words_ids(self._tokenizer, settings.bad_words, self._tokenizer.eos_token_id)
        if banned:
            kwargs["bad_words_ids"] = banned
        # Without sampling, temperature, top_k and top_p are not passed: generate() ignores them and
        # warns that they are set.
        return kwargs

    def _pad_id(self) -> int:
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = self._tokenizer.eos_token_id
        return int(pad) if pad is not None else 0

    def stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        *,
        top_alternatives: int = 0,
    ) -> Iterator[StreamEvent]:
        """Yield notices, then tokens as they are generated, then one Finished event."""
        if self._model is None:
            raise EngineError(Text("The engine is closed.", "Движок закрыт."))
        started = time.perf_counter()
        prep = self.prepare(prompt, settings)
        self._check(prep, settings)
        yield from prep.notices
        seed = choose_seed(settings)
        single = settings.num_beams == 1 and settings.num_return_sequences == 1
        run = self._stream_single if single else self._generate_batch
        yield from run(prep, settings, seed, cancel, top_alternatives, started)

    def _run_generate(
        self,
        ids: list[int],
        kwargs: dict[str, Any],
        seed: int,
        extra: dict[str, Any],
        out: queue.Queue[tuple[str, Any]],
    ) -> None:
        """Body of the generation thread: generate(), then report the result or the failure."""
        import torch
        from transformers import set_seed

        try:
            with self._lock, torch.inference_mode():
                set_seed(seed)
                input_ids = torch.tensor([ids], device=self._model.device)
                result = self._model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs, **extra)
            out.put(("done", result))
        except BaseException as exc:  # reported to the consumer, which raises it in its thread
            out.put(("error", exc))

    def _stream_single(
        self,
        prep: PreparedPrompt,
        settings: GenerationSettings,
        seed: int,
        cancel: threading.Event | None,
        top_n: int,
        started: float,
    ) -> Iterator[StreamEvent]:
        from transformers import LogitsProcessorList, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        ids, min_new, max_new = prep.ids, prep.min_new, prep.max_new
        user_cancel = cancel or threading.Event()
        stop_flag = _Cancelled()
        recorder = _Recorder()
        out: queue.Queue[tuple[str, Any]] = queue.Queue()

        class QueueStreamer(BaseStreamer):
            """Hands each new token, with its log-probabilities, to the consuming thread."""

            def __init__(self) -> None:
                self.prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:  # generate() first pushes the prompt itself
                    self.prompt_seen = True
                    return
                token = int(value.reshape(-1)[0])
                out.put(("token", (token, recorder.logprobs)))

            def end(self) -> None:
                pass

        kwargs = self.generate_kwargs(settings, min_new, max_new)
        extra = {
            "streamer": QueueStreamer(),
            "logits_processor": LogitsProcessorList([recorder]),
            "stopping_criteria": StoppingCriteriaList([_stopping_criteria(user_cancel, stop_flag)]),
        }
        thread = threading.Thread(
            target=self._run_generate, args=(ids, kwargs, seed, extra, out), name="gptdesk-generate", daemon=True
        )
        clock = Clock(started)
        thread.start()
        eos = self._tokenizer.eos_token_id
        output = SequenceOutput(self._tokenizer, settings.stop, eos, self.piece)
        try:
            while True:
                kind, payload = out.get()
                if kind == "error":
                    raise _wrap_failure(payload)
                if kind == "done":
                    break
                token, logprobs = payload
                clock.step_done()
                if stop_flag.is_set():
                    continue  # a token generated after a stop string: not part of the output
                lp, alts = _logprob_and_alternatives(self, logprobs, token, top_n)
                event = output.push(token, lp, alts)
                if output.reason == "stop":
                    stop_flag.set()
                yield event
        finally:
            stop_flag.set()  # also when the consumer walked away (GeneratorExit): stop at the next token
            thread.join()
        ending: FinishReason = "length"
        if user_cancel.is_set() and output.generated < max_new:
            ending = "cancelled"
        tail = output.finish(ending)
        if tail is not None:  # a held-back tail (a partial stop string or UTF-8 character) at the very end
            yield tail
        yield finished([output], len(ids), seed, clock.finish([output]), prep.truncated)

    def _generate_batch(
        self,
        prep: PreparedPrompt,
        settings: GenerationSettings,
        seed: int,
        cancel: threading.Event | None,
        top_n: int,
        started: float,
    ) -> Iterator[StreamEvent]:
        """Beam search or several sequences: generate all, then emit each sequence's tokens."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        ids, max_new = prep.ids, prep.max_new
        user_cancel = cancel or threading.Event()
        stop_flag = _Cancelled()
        out: queue.Queue[tuple[str, Any]] = queue.Queue()
        eos = self._tokenizer.eos_token_id
        clock = Clock(started)
        recorder = _BatchRecorder(len(ids), eos, top_n, clock)
        kwargs = self.generate_kwargs(settings, prep.min_new, max_new)
        extra = {
            "logits_processor": LogitsProcessorList([recorder]),
            "stopping_criteria": StoppingCriteriaList([_stopping_criteria(user_cancel, stop_flag)]),
        }
        thread = threading.Thread(
            target=self._run_generate, args=(ids, kwargs, seed, extra, out), name="gptdesk-generate", daemon=True
        )
        thread.start()
        kind, payload = out.get()  # no yield before the result: a consumer cannot walk away here
        thread.join()
        if kind == "error":
            raise _wrap_failure(payload)
        sequences = payload[:, len(ids) :].tolist()
        pad = self._pad_id()
        outputs: list[SequenceOutput] = []
        for seq_index, seq in enumerate(sequences):
            # Sequences that ended early are padded after their EOS; cut there.
            if eos is not None and eos in seq:
                seq = seq[: seq.index(eos) + 1]
            elif pad != eos and seq and seq[-1] == pad:
                while seq and seq[-1] == pad:
                    seq.pop()
            output = SequenceOutput(self._tokenizer, settings.stop, eos, self.piece, seq_index)
            for step, token in enumerate(seq):
                event = output.push(token, recorder.logprob(seq, step), recorder.alternatives(seq, step, self.piece))
                yield event
                if output.done:
                    break
            ending: FinishReason = "cancelled" if user_cancel.is_set() and len(seq) < max_new else "length"
            tail = output.finish(ending)
            if tail is not None:
                yield tail
            outputs.append(output)
        yield finished(outputs, len(ids), seed, clock.finish(outputs), prep.truncated)

    # -- scoring a text (the perplexity tool) ---------------------------------------------------

    def score_tokens(self, ids: list[int], start: int = 1) -> Any:
        """log p(ids[i] | ids[:i]) for i in start .. len(ids) - 1 (a float64 numpy vector), from one
        forward pass over `ids`.

        The output layer runs on a few hundred positions at a time, so a 2048-token window of a
        50k vocabulary never holds all its logits at once (400 MB in float32).
        """
        import torch

        if not 1 <= start < len(ids) <= self.info.n_positions:
            raise InvalidInputError(
                Text(
                    f"{len(ids)} token ids scored from position {start}: give 2 to {self.info.n_positions} ids "
                    "and a start between 1 and their number - 1.",
                    f"{len(ids)} токенов с позиции {start}: нужно от 2 до {self.info.n_positions} токенов и "
                    "начало от 1 до их числа - 1.",
                )
            )
        with self._lock, torch.inference_mode():
            model = self._model
            if model is None:
                raise EngineError(Text("The engine is closed.", "Движок закрыт."))
            full = torch.tensor([ids], device=model.device)
            hidden = model.transformer(full).last_hidden_state[0]
            parts = []
            for a in range(start - 1, len(ids) - 1, 256):
                b = min(a + 256, len(ids) - 1)
                logprobs = torch.log_softmax(model.lm_head(hidden[a:b]).float(), dim=-1)
                parts.append(logprobs.gather(1, full[0, a + 1 : b + 1, None])[:, 0])
            return torch.cat(parts).double().cpu().numpy()


def apply_lora(model: Any, folder: Path) -> Any:
    """The model with the peft LoRA adapter in `folder` merged into its weights (same class, full speed)."""
    from peft import PeftModel

    try:
        wrapped = PeftModel.from_pretrained(model, str(folder))
    except Exception as exc:  # peft and safetensors raise their own types for a damaged file
        raise DamagedAdapterError(
            Text(
                f"The adapter in {folder} cannot be applied: {exc}. Remove it with `gptdesk adapters rm "
                f"{folder.name}` and tune it again.",
                f"Адаптер в {folder} не применяется: {exc}. Удалите его (`gptdesk adapters rm {folder.name}`) "
                "и обучите заново.",
            )
        ) from exc
    return wrapped.merge_and_unload()


def _logprob_and_alternatives(
    engine: TransformersEngine, logprobs: Any, token: int, top_n: int
) -> tuple[float | None, tuple[Alternative, ...]]:
    if logprobs is None:
        return None, ()
    values = logprobs.numpy()
    return float(values[token]), alternatives(values, top_n, engine.piece)


def _wrap_failure(exc: BaseException) -> BaseException:
    if isinstance(exc, GptDeskError):
        return exc
    if isinstance(exc, MemoryError):
        from gptdesk.errors import InsufficientMemoryError

        return InsufficientMemoryError(
            Text(
                "The computer ran out of memory during generation. Use fewer beams or sequences, "
                "fewer new tokens, or load the model in bfloat16.",
                "Во время генерации закончилась память. Уменьшите число лучей или вариантов, "
                "число новых токенов или загрузите модель в bfloat16.",
            )
        )
    wrapped = EngineError(
        Text(
            f"Generation failed inside transformers: {type(exc).__name__}: {exc}",
            f"Генерация завершилась ошибкой в transformers: {type(exc).__name__}: {exc}",
        )
    )
    wrapped.__cause__ = exc
    return wrapped
