"""`chatforge chat`: a multi-turn conversation in the terminal, streamed token by token, or one reply and exit."""

from __future__ import annotations

import threading

from rich.console import Console

from chatforge.models.generate import SamplingConfig, reply, stop_ids

HELP = "commands: /reset (new conversation), /exit (quit). Ctrl-D quits too."


def one_reply(model_path: str, message: str, system: str | None = None, temperature: float = 0.7,
              top_p: float = 0.9, max_new_tokens: int = 128, seed: int | None = None) -> str:
    from chatforge.models.loading import load_model

    model, tok = load_model(model_path)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]
    sampling = SamplingConfig(max_new_tokens, temperature, top_p, seed if seed is not None else 0)
    return reply(model, tok, [messages], sampling)[0]


def stream_reply(model, tok, messages: list[dict], sampling: SamplingConfig, console: Console) -> str:
    import torch
    from transformers import TextIteratorStreamer

    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(**{k: v.to(model.device) for k, v in ids.items()}, streamer=streamer,
                  max_new_tokens=sampling.max_new_tokens, eos_token_id=stop_ids(model, tok),
                  pad_token_id=tok.pad_token_id, **sampling.generate_kwargs())
    thread = threading.Thread(target=lambda: torch.inference_mode()(model.generate)(**kwargs), daemon=True)
    thread.start()
    parts = []
    for piece in streamer:
        parts.append(piece)
        console.print(piece, end="", highlight=False, markup=False)
    thread.join()
    console.print()
    return "".join(parts).strip()


def chat_loop(model_path: str, system: str | None = None, temperature: float = 0.7, top_p: float = 0.9,
              max_new_tokens: int = 128, seed: int | None = None) -> None:
    import torch

    from chatforge.models.loading import load_model

    console = Console(highlight=False)
    model, tok = load_model(model_path)
    if seed is not None:
        torch.manual_seed(seed)
    sampling = SamplingConfig(max_new_tokens, temperature, top_p)
    start = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    console.print(f"[bold]chatforge chat[/bold] · {model_path} · {HELP}")
    while True:
        try:
            text = console.input("[bold cyan]you>[/bold cyan] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if text in ("/exit", "/quit"):
            return
        if text == "/reset":
            messages = list(start)
            console.print("[dim](new conversation)[/dim]")
            continue
        if not text:
            continue
        messages.append({"role": "user", "content": text})
        console.print("[bold green]assistant>[/bold green] ", end="")
        messages.append({"role": "assistant", "content": stream_reply(model, tok, messages, sampling, console)})
