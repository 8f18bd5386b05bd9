"""python -m distillery_student train|serve|report"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from .contract import EXIT_PERMANENT, REASON_INVALID_INPUT, InvalidInput, TrainResult, write_termination_log


def _train(args: argparse.Namespace) -> int:
    from .contract import load_train_config

    result = TrainResult()
    try:
        cfg = load_train_config(args.config)
        from .progress import ProgressReporter
        from .train import TrainOptions, train

        rank = int(os.environ.get("RANK", "0"))
        opts = TrainOptions(
            micro_batch_size=args.micro_batch_size, memory_gb=args.memory_gb, schedule=args.schedule, warmup_steps=args.warmup_steps,
            device=args.device,
            progress=ProgressReporter.for_job(cfg.job, rank, args.progress_interval, cfg.point.index if cfg.point else None),
            cuda_graphs=args.cuda_graphs, compile=args.compile, packing=args.packing,
        )
        result = train(cfg, opts)
        code = 1 if result.error else 0
    except InvalidInput as e:
        result.error, result.reason = str(e), REASON_INVALID_INPUT
        print(f"error: {e}", file=sys.stderr)
        code = EXIT_PERMANENT
    except Exception as e:  # noqa: BLE001 - summarised for the operator, traceback for the log
        traceback.print_exc()
        result.error = f"{type(e).__name__}: {e}"
        code = 1
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:  # one summary per pod
        write_termination_log(args.termination_log, result)
    from .parallel import shutdown
    shutdown()
    return code


def _report(args: argparse.Namespace) -> int:
    """A sweep's report (report.py): one line {"stage":"report",...} in the termination log."""
    from .contract import load_report_config
    from .report import run_sweep_report

    try:
        cfg = load_report_config(args.config)
        run_sweep_report(cfg)
        summary: dict = {"stage": "report", "points": len(cfg.points), "servedIndex": cfg.servedIndex}
        code = 0
    except InvalidInput as e:
        print(f"error: {e}", file=sys.stderr)
        summary, code = {"stage": "report", "error": str(e)[:3000], "reason": REASON_INVALID_INPUT}, EXIT_PERMANENT
    except Exception as e:  # noqa: BLE001 - summarised for the operator, traceback for the log
        traceback.print_exc()
        summary, code = {"stage": "report", "error": f"{type(e).__name__}: {e}"[:3000]}, 1
    write_termination_log(args.termination_log, summary)
    return code


def _serve(args: argparse.Namespace) -> int:
    from .serve import ServerConfig, serve

    return serve(ServerConfig(
        model_dir=args.model, model_name=args.served_model_name, host=args.host, port=args.port,
        max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes, max_input_chars=args.max_input_chars, read_timeout_s=args.read_timeout,
        idle_timeout_s=args.idle_timeout, drain_delay_s=args.drain_delay, graceful_timeout_s=args.graceful_timeout,
        device=args.device, decoder=args.decoder, http=args.http, threads=args.threads, lanes=args.lanes,
        capture_graphs=args.capture_graphs == "all", compile_decoder=args.compile_decoder,
    ))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="distillery_student", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the student as train.json says")
    t.add_argument("--config", default="/etc/distillery/train.json")
    t.add_argument("--termination-log", default="/dev/termination-log")
    t.add_argument("--micro-batch-size", type=int, default=0,
                   help="records per micro-batch on one rank (gradient accumulation); 0: picked to fit the GPU")
    t.add_argument("--memory-gb", type=float, default=0.0,
                   help="GPU memory the automatic micro-batches plan for; 0: the card's own")
    t.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
    t.add_argument("--warmup-steps", type=int, default=-1, help="-1: 5%% of the steps, at most 100")
    t.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress reports")
    t.add_argument("--device", default="", help="cpu or cuda; default: cuda when available")
    t.add_argument("--cuda-graphs", choices=["auto", "on", "off"], default="auto",
                   help="a single GPU process replays each batch shape's forward and backward as a CUDA graph: on "
                        "always; auto and off never (auto: they did not shorten a measured job; training.cudaGraphs "
                        "off wins)")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile each transformer block, on any device and model, but not when FSDP shards it "
                        "over several processes (training.compile in train.json does it only where it was measured: "
                        "full fine-tuning of T5 in one process on a GPU): on an H200 t5-large's packed step at 64 records ran about 1.3x faster, but a "
                        "500-step t5-base job took 171 s against 55 s, most of it compiling (docs/benchmarks.md)")
    t.add_argument("--packing", choices=["auto", "on", "off"], default="auto",
                   help="pack each micro-batch, several examples to a row with masks that keep them apart (fewer padded "
                        "tokens; batches drawn at random); auto packs on a GPU; models packing.unpackable names stay padded")
    s = sub.add_parser("serve", help="serve a trained student over HTTP")
    s.add_argument("--model", default="/workspace/model")
    s.add_argument("--served-model-name", default="", help="the model id of /v1/models (the StudentModel's name)")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--max-batch-size", type=int, default=32, help="inputs per generate pass")
    s.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a batch waits at most for more requests (only while it is smaller than the last)")
    s.add_argument("--max-queue", type=int, default=1024, help="inputs waiting; beyond, 429 with Retry-After")
    s.add_argument("--max-body-bytes", type=int, default=1 << 20)
    s.add_argument("--max-input-chars", type=int, default=16384, help="characters per input")
    s.add_argument("--read-timeout", type=float, default=10.0, help="seconds for a request head or body")
    s.add_argument("--idle-timeout", type=float, default=5.0, help="seconds a keep-alive connection may idle")
    s.add_argument("--drain-delay", type=float, default=5.0,
                   help="seconds between SIGTERM (readiness false) and closing the listener")
    s.add_argument("--graceful-timeout", type=float, default=20.0, help="seconds in-flight requests get after that")
    s.add_argument("--device", default="")
    s.add_argument("--decoder", choices=["auto", "hf", "static"], default="auto",
                   help="static: fixed-shape decoding (T5, Llama/Qwen) with CUDA graphs on a GPU; hf: Hugging Face "
                        "generate; auto: static where it applies")
    s.add_argument("--lanes", type=int, default=1,
                   help="model threads, each with its own decoder and CUDA stream on a GPU (docs/benchmarks.md)")
    s.add_argument("--capture-graphs", choices=["all", "lazy"], default="all",
                   help="on a GPU: capture every label batch shape's CUDA graphs before readiness (all), or each "
                        "when first seen (lazy: that request waits for the capture)")
    s.add_argument("--compile-decoder", choices=["auto", "on", "off"], default="auto",
                   help="T5 students: the decoder's layers and the encoder's blocks through torch.compile, before "
                        "the graphs are captured (auto: on a GPU; docs/benchmarks.md)")
    s.add_argument("--threads", type=int, default=0,
                   help="torch threads when serving on a CPU; 0: the CPUs the pod may use (its limit), less one")
    s.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto",
                   help="uvicorn's HTTP parser; auto: httptools (C) when installed, else h11")
    r = sub.add_parser("report", help="a sweep's report: report.json and report.svg from its points' metrics")
    r.add_argument("--config", default="/etc/distillery/report.json")
    r.add_argument("--termination-log", default="/dev/termination-log")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    return {"train": _train, "serve": _serve, "report": _report}[args.command](args)


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a torchrun rank: see exit_rank
        from .parallel import exit_rank
        exit_rank(code)
    sys.exit(code)
