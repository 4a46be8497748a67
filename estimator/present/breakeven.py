"""`estimate breakeven`'s answer as a :class:`~estimator.present.report.Report`: each way of using the text (in
every prompt, prefix cached, fine-tuned once per run) with its FLOPs and time once and per query, when each
fine-tuning run pays for itself, and the assumptions (:mod:`estimator.present.breakeven_words`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from estimator.present.breakeven_words import after, breakeven_assumptions, finetune_label, seconds
from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown

# one way of using the text: its name, FLOPs once, FLOPs per query, seconds once, seconds per query, bytes held
Way = tuple[str, int, int, float, float, int]
CSV_HEADER = ["way", "flops_once", "flops_per_query", "seconds_once", "seconds_per_query", "serving_bytes",
              "breakeven_queries", "breakeven_queries_prefix_cached", "breakeven_queries_by_time",
              "breakeven_queries_prefix_cached_by_time"]  # fmt: skip


def deployment_record(device: Any) -> dict[str, Any]:
    """The deployment the times are on: GPUs, batch, and the pool that holds the batch."""
    return {
        "accelerator": device.name,
        "gpus": device.gpus,
        "chosen": "smallest that fits" if device.chosen else "given",
        "batch": device.batch,
        "sequence_tokens": device.sequence_tokens,
        "pool_bytes_per_gpu": device.pool_bytes,
        "sequence_bytes_per_gpu": device.sequence_bytes,
        "most_sequences": device.most_sequences,
    }


def cumulative_record(runs: list[Any], times: list[Any], queries: int) -> dict[str, Any]:
    """Total FLOPs and seconds after ``queries`` queries: in context, prefix cached, and each fine-tuning run."""
    flops, spent = runs[0].cumulative_flops(queries), times[0].cumulative_seconds(queries)
    record: dict[str, Any] = {"queries": queries}
    for key in ("in_context", "in_context_prefix_cached"):
        record[f"{key}_flops"], record[f"{key}_seconds"] = flops[key], spent[key]
    for run, t in zip(runs, times, strict=True):
        name = f"fine_tuned_{run.epochs * run.augmentation}_exposures"
        record[f"{name}_flops"] = run.cumulative_flops(queries)["fine_tuned"]
        record[f"{name}_seconds"] = t.cumulative_seconds(queries)["fine_tuned"]
    return record


def exposure_record(result: Any) -> dict[str, Any]:
    """The fine-tuning run at the capacity regime: its exposures, epochs, FLOPs and break-even."""
    return {
        "exposures": result.epochs * result.augmentation,
        "epochs": result.epochs,
        "finetune_once_flops": result.finetune_once_flops,
        "breakeven_queries": result.queries,
        "breakeven_queries_prefix_cached": result.queries_prefix_cached,
    }


def time_record(times: Any) -> dict[str, Any]:
    """Seconds on the accelerator, every key with its unit."""
    return {
        "accelerator": getattr(times.device, "name", None),
        "batch": times.batch,
        "in_context_query_seconds": times.in_context_query_seconds,
        "in_context_prefix_cached_once_seconds": times.in_context_prefix_cached_once_seconds,
        "in_context_prefix_cached_query_seconds": times.in_context_prefix_cached_query_seconds,
        "finetune_once_seconds": times.finetune_once_seconds,
        "fine_tuned_query_seconds": times.fine_tuned_query_seconds,
        "in_context_decode_seconds_per_token": times.in_context_decode_seconds_per_token,
        "fine_tuned_decode_seconds_per_token": times.fine_tuned_decode_seconds_per_token,
        "in_context_decode_bound": times.in_context_decode_bound,
        "breakeven_queries_by_time": times.queries,
        "breakeven_queries_prefix_cached_by_time": times.queries_prefix_cached,
    }


@dataclass(frozen=True)
class BreakevenReport:
    """``runs`` (:class:`~estimator.cost.Breakeven`: yours, then one at the capacity regime's exposures when
    yours trains fewer) and their ``times`` (:class:`~estimator.timing.BreakevenTime`) on one deployment;
    ``count``: also the totals after this many queries (None: not asked)."""

    runs: list[Any]
    times: list[Any]
    count: int | None = None

    def record(self) -> dict[str, Any]:
        from estimator import __version__

        runs, times = self.runs, self.times
        record = {**runs[0].to_dict(), **time_record(times[0]), "deployment": deployment_record(times[0].device)}
        if len(runs) > 1:
            record["at_capacity_exposures"] = {**exposure_record(runs[1]), **time_record(times[1])}
        if self.count is not None:
            record["after_queries"] = cumulative_record(runs, times, self.count)
        return {"estimator_version": __version__, **record, "assumptions": self._assumptions()}

    def _assumptions(self) -> list[str]:
        return breakeven_assumptions(self.runs[0], self.times[0].device)

    def _ways(self) -> list[Way]:
        """In context, prefix cached, then each fine-tuning run, with the bytes each holds while serving."""
        result, first = self.runs[0], self.times[0]
        kv = result.est.kv_cache_bytes
        return [
            ("in context", 0, result.in_context_query_flops, 0.0, first.in_context_query_seconds, kv),
            ("in context, prefix cached", result.in_context_prefix_cached_once_flops,
             result.in_context_prefix_cached_query_flops, first.in_context_prefix_cached_once_seconds,
             first.in_context_prefix_cached_query_seconds, kv),
            *[(finetune_label(run), run.finetune_once_flops, run.fine_tuned_query_flops, t.finetune_once_seconds,
               t.fine_tuned_query_seconds, self._adapter_bytes(run))
              for run, t in zip(self.runs, self.times, strict=True)],
        ]  # fmt: skip

    @staticmethod
    def _adapter_bytes(run: Any) -> int:
        """The adapter a fine-tuned model serves with (LoRA's bytes; none for full fine-tuning)."""
        return int(run.est.lora_bytes) if run.finetune.value == "lora" else 0

    def rows(self) -> list[list[object]]:
        """One row per way; a fine-tuning run's break-evens in queries (blank where it never pays or for the
        in-context ways); with --queries, the totals after that many."""
        count = self.count
        header: list[object] = [*CSV_HEADER, *([] if count is None else ["queries", "flops_total", "seconds_total"])]
        table: list[list[object]] = [header]
        runs = [None, None, *zip(self.runs, self.times, strict=True)]
        for (name, once, each, once_s, each_s, held), pair in zip(self._ways(), runs, strict=True):
            marks: list[object] = ["", "", "", ""]
            if pair is not None:
                run, t = pair
                marks = ["" if q is None else q for q in (run.queries, run.queries_prefix_cached, t.queries,
                                                          t.queries_prefix_cached)]  # fmt: skip
            totals: list[object] = [] if count is None else [count, once + count * each, once_s + count * each_s]
            table.append([name, once, each, once_s, each_s, held, *marks, *totals])
        return table

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        """The table's headers and cells, in FLOPs and the time unit that fits."""
        from estimator.units import format_flops

        body = [
            [name, format_flops(once), format_flops(each), seconds(once_s) if once_s else "0 s", seconds(each_s)]
            for name, once, each, once_s, each_s, _ in self._ways()
        ]
        headers = ["", "FLOPs once", "FLOPs per query", "time once", "time per query"]
        if self.count is not None:  # cumulative totals: what is paid once, plus every query
            count = self.count
            headers += [f"FLOPs, {count:,} queries", f"time, {count:,} queries"]
            for cells, (_, once, each, once_s, each_s, _) in zip(body, self._ways(), strict=True):
                cells += [format_flops(once + count * each), seconds(once_s + count * each_s)]
        return headers, body

    def _head(self) -> list[Text]:
        est, device = self.runs[0].est, self.times[0].device
        return [
            Text(f"{est.spec.display_name} ({est.spec.name}): {est.tokens:,} tokens of text in every prompt, or "
                 f"trained in once; {device.words()}"),
            BLANK,
        ]  # fmt: skip

    def _caption(self) -> str:
        device = self.times[0].device
        return f"(times on {device.display_name}, batch {device.batch:,}, per query; exact FLOPs in --json)"

    def _tail(self) -> list[Text]:
        """When each run pays for itself, decoding, the memory held, and the assumptions."""
        from estimator.units import format_bytes

        result, first = self.runs[0], self.times[0]
        est, device = result.est, first.device
        blocks = [BLANK]
        for run, t in zip(self.runs, self.times, strict=True):
            lead = "Fine-tuning" if run is result else f"Trained to {run.epochs * run.augmentation:,} exposures, it"
            blocks.append(Text(f"{lead} is cheaper in FLOPs {after(run.queries)} against the text in every prompt "
                               f"and {after(run.queries_prefix_cached)} against a prefix-cached context; in time, "
                               f"{after(t.queries)} and {after(t.queries_prefix_cached)}."))  # fmt: skip
        each = f"each of the {device.batch:,} queries' " if device.batch > 1 else "the "
        icl, tuned = first.in_context_decode_seconds_per_token, first.fine_tuned_decode_seconds_per_token
        blocks.append(Text(f"Decoding one token after the context takes {seconds(icl)} ({first.in_context_decode_bound}"
                           f"-bound: it reads the weights and {each}{format_bytes(est.kv_cache_bytes)} cache), "
                           f"fine-tuned {seconds(tuned)}."))  # fmt: skip
        adapter = f"the adapter {format_bytes(est.lora_bytes)}" if result.finetune.value == "lora" else "no adapter"
        cache = f"the KV cache of the context {format_bytes(est.kv_cache_bytes)} ({est.kv.describe()})"
        blocks += [Text(f"Memory held while serving: {cache}; {adapter}."), BLANK, Text("Assumptions:")]
        return [*blocks, *(Text(line, bullet="- ") for line in self._assumptions())]

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        headers, body = self._cells()
        table = format_table(headers, body, right=set(range(1, len(headers))))
        return [*self._head(), pre(table), pre(self._caption()), *self._tail()]

    def markdown(self) -> str:
        headers, body = self._cells()
        return text_markdown([*self._head(), Text(markdown_table([headers, *body])), Text(self._caption()),
                              *self._tail()])  # fmt: skip
