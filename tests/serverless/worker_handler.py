"""A serverless worker written for RunPod, run unchanged: `python worker_handler.py` with the
RUNPOD_* variables the console gives a worker. HANDLER picks the handler: "plain" (echo,
raise on request, a long sleep that notes its cancellation) or "tokens" (a generator whose
chunks stream, with the aggregate as the job's output)."""

import asyncio
import os
import pathlib

import runpod


async def plain(job):
    value = job["input"]
    if value.get("raise"):
        raise ValueError(f"asked to fail: {value['raise']}")
    if value.get("sleep"):
        try:
            await asyncio.sleep(value["sleep"])
        except asyncio.CancelledError:
            marker = pathlib.Path(os.environ["STOP_MARKERS"]) / job["id"]
            marker.write_text("stopped")
            raise
    return {"echo": value, "worker": os.environ["RUNPOD_POD_ID"]}


def tokens(job):
    for n in range(job["input"]["n"]):
        yield {"tok": n}


if __name__ == "__main__":
    if os.environ["HANDLER"] == "tokens":
        runpod.serverless.start({"handler": tokens, "return_aggregate_stream": True})
    else:
        runpod.serverless.start({"handler": plain})
