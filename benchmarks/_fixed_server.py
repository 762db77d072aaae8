"""
A minimal fixed-response Together look-alike for the triggerer benchmark: raw asyncio, HTTP/1.1 keep-alive.

It exists to take the server's cost out of the client figures: no framework, no validation, one pre-built
job body per status. ``GET /v1/fine-tunes/{id}`` answers ``running`` for the first ``--rounds - 1`` polls of
each id (or as many as the id's ``-r<N>-`` part says) and ``completed`` from then on, so every trigger fires its one event after exactly ``--rounds`` polls
(any id is accepted: there is nothing to create first). ``/events`` and ``/checkpoints`` answer empty lists.
``GET /_stats`` reports requests served and this process's CPU time.

Run as a separate process (its CPU must not count as client CPU); prints its base URL as the first line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import time
from collections import Counter

#: A realistic job object: the real API embeds the job's events, so each poll parses a few KB of JSON.
#: The n-th poll of a job sees its first n events, i.e. one new event (one log line) per poll.
_EVENTS = [
    {
        "object": "fine-tune-event",
        "created_at": f"2026-11-26T10:{i:02d}:00.000Z",
        "level": "info",
        "message": msg,
        "type": typ,
        "param_count": 0,
        "token_count": 0,
        "total_steps": 0,
        "wandb_url": "",
        "step": 0,
        "checkpoint_path": "",
        "model_path": "",
        "training_offset": 0,
        "hash": f"{i:032x}",
    }
    for i, (typ, msg) in enumerate(
        [
            ("job_pending", "Fine tune request created"),
            ("job_start", "Job started at Thu Nov 26 10:01:00 UTC 2026"),
            (
                "model_downloading",
                "Downloading model data for meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            ),
            ("model_download_complete", "Model data downloaded"),
            ("training_data_downloading", "Downloading training data"),
            ("training_data_download_complete", "Training data downloaded"),
            ("training_start", "Training started for model meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"),
            ("epoch_complete", "Epoch completed, at step 120"),
        ]
    )
]


def _job(job_id: str, status: str, n_events: int) -> bytes:
    return json.dumps(
        {
            "id": job_id,
            "object": "fine-tune",
            "status": status,
            "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            "model_output_name": f"bench/Meta-Llama-3.1-8B-Instruct-Reference-{job_id}",
            "training_file": "file-0123456789",
            "validation_file": "",
            "created_at": "2026-11-26T10:00:00.000Z",
            "updated_at": "2026-11-26T10:07:00.000Z",
            "started_at": "2026-11-26T10:01:00.000Z",
            "n_epochs": 3,
            "n_checkpoints": 1,
            "n_evals": 0,
            "batch_size": 16,
            "learning_rate": 1e-05,
            "total_steps": 360,
            "steps_completed": 120,
            "epochs_completed": 1,
            "evals_completed": 0,
            "queue_depth": 0,
            "token_count": 1234567,
            "param_count": 8030261248,
            "total_price": 12345678900,
            "training_method": {"method": "sft", "train_on_inputs": "auto"},
            "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
            "events": _EVENTS[:n_events],
        }
    ).encode()


#: A job id may carry its own number of rounds: ``ft-naive-r2-00017`` completes on its 2nd poll.
_ROUNDS = re.compile(r"-r(\d+)-")


def _response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


class _State:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.polls: Counter[str] = Counter()
        self.requests = 0
        self.connections = 0
        self.started = time.process_time()

    def answer(self, method: str, path: str) -> bytes:
        self.requests += 1
        parts = path.split("?", 1)[0].strip("/").split("/")
        if method == "GET" and parts == ["_stats"]:
            stats = {
                "requests": self.requests,
                "connections": self.connections,
                "ids": len(self.polls),
                "cpu_s": time.process_time() - self.started,
            }
            return _response(200, json.dumps(stats).encode())
        if method == "GET" and len(parts) >= 3 and parts[:2] == ["v1", "fine-tunes"]:
            job_id = parts[2]
            if len(parts) == 3:
                self.polls[job_id] += 1
                rounds = int(match.group(1)) if (match := _ROUNDS.search(job_id)) else self.rounds
                status = "completed" if self.polls[job_id] >= rounds else "running"
                # One more event per poll (as a job that moves along), so each poll has one new line to log.
                return _response(200, _job(job_id, status, self.polls[job_id]))
            if len(parts) == 4 and parts[3] in ("events", "checkpoints"):
                return _response(200, b'{"object": "list", "data": []}')
        return _response(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')


class _Protocol(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = lines[0].split(" ", 2)
            assert self.transport is not None
            self.transport.write(self.state.answer(method, path))
            if close:
                self.transport.close()
                return


async def _serve(port: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    state = _State(rounds)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # A deep backlog: the naive client opens a thousand connections in the same instant.
    server = await loop.create_server(lambda: _Protocol(state), sock=sock, backlog=4096)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="polls per job id before it reports completed")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.rounds))


if __name__ == "__main__":
    main()
