"""The baseline stages (explain, simulate, score) of N units on 1 and on 2 local Dask workers,
and their ratio, measured in one run.

One collection (MiniLM, ``--units`` spread over four ``layers.N.mlp`` sites, ``--windows``
windows of the standard library's docstrings) is stored once; each measurement then runs on its
own copy of that warehouse, so none reuses another's rows: ``baseline/ngram`` explains,
``baseline/lexical`` simulates and judges fuzzing, every score kind with the default bootstrap,
shuffled controls on (the default config's score settings).

Two figures per worker count, each the wall time of ``flows.engine.fan_out`` (the flow process
loads, sends, receives and writes everything):

- cold: ``[engine] kind = "dask", workers = N``: the local cluster is started for the run and
  stopped after it, as ``neuroscribe run`` does;
- warm: ``engine.address`` of a cluster of N workers started beforehand, whose workers have
  imported neuroscribe and loaded MiniLM (``search`` embeds every explanation), as on a cluster
  that serves many runs.

``--whole-run`` adds a third figure per worker count: ``flows.pipeline.run_flow``, all of
``neuroscribe run`` on the stored collection (its one local cluster started and stopped inside,
the collect stage finding every unit stored, the fan-out, agreement, the summary).

``--local`` adds the single-process engine (the pipeline's own explain, simulate and score
tasks) for reference. Each line also gives the CPU seconds of the benchmark's own process over
the same span (``CPU-s here``: the flow's reading, sending, receiving and writing, and the
scheduler of a local cluster, which runs in it; not the workers'): what competes with the
workers for the cores, and a figure that a busy machine changes far less than wall times. The
machine's load (``os.getloadavg``) is printed before and after: timings on a shared machine
are noisy, and two workers cannot beat one by more than the idle cores allow. ``--collected
FILE`` keeps the collection in FILE and reuses it on the next run with the same arguments.

    python benchmarks/engine_scaling.py [--units 4096] [--windows 2000] [--local] [--whole-run]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from contextlib import closing
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")

from neuroscribe.collect.incremental import unit_selector  # noqa: E402
from neuroscribe.config import RunConfig  # noqa: E402
from neuroscribe.ids import new_run_id  # noqa: E402

SITES = 4


def config(units: int, windows: int, **engine: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "subject": {"model": "all-minilm-l6-v2"},
            "corpus": {"source": "stdlib", "max_documents": None},
            "collect": {
                "site": [f"layers.{i}.mlp" for i in range(SITES)],
                "units": units // SITES,
                "max_windows": windows,
            },
            "explain": {"explainers": ["baseline/ngram"]},
            "simulate": {"simulators": ["baseline/lexical"]},
            "engine": engine,
        }
    )


def _warm() -> None:
    """Run on every worker of a warm cluster: what the first chunk would load."""
    import flows.engine  # noqa: F401
    from neuroscribe.embed import embed_texts

    embed_texts(["warm"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=4096, help="a multiple of 4")
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument(
        "--chunk-units", type=int, default=None, help="default: the engine's (4 chunks a worker)"
    )
    parser.add_argument("--local", action="store_true", help="also the single-process engine")
    parser.add_argument(
        "--whole-run", action="store_true", help="also neuroscribe run's whole flow, timed"
    )
    parser.add_argument("--skip-warm", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument(
        "--collected",
        type=Path,
        default=None,
        help="keep the collection in this file and reuse it when it exists (same arguments)",
    )
    args = parser.parse_args()

    from flows.server import temporary_server

    folder = Path(tempfile.mkdtemp(prefix="engine-scaling-"))
    with temporary_server():
        from prefect import flow

        from flows import engine, pipeline
        from neuroscribe.warehouse import collection, connect, runs

        base = args.collected or folder / "collected.duckdb"
        cfg = config(args.units, args.windows)
        if base.exists():
            print(f"reusing the collection in {base}; load {_load()}; {os.cpu_count()} cpus")
        else:
            t0 = time.perf_counter()
            keys = pipeline.collect_flow(cfg, str(base), new_run_id(cfg.config_hash))
            print(
                f"collected {len(keys)} units of {cfg.subject.model} on {args.windows} windows "
                f"in {time.perf_counter() - t0:.0f} s; load {_load()}; {os.cpu_count()} cpus"
            )

        @flow(name="engine-scaling", validate_parameters=False)
        def stages(cfg: RunConfig, warehouse: str) -> tuple[float, float]:
            run_id = new_run_id(cfg.config_hash)
            with closing(connect(warehouse)) as con:
                runs.start_run(con, run_id, cfg)
                subject, sites, sae = unit_selector(cfg)
                unit_keys = collection.find_unit_keys(con, subject, sites, cfg.unit_indices, sae)
            start, cpu = time.perf_counter(), time.process_time()
            if cfg.engine.kind == "dask":
                engine.fan_out(cfg, warehouse, run_id, unit_keys)
            else:
                ids = pipeline.explain_task(cfg, warehouse, run_id, unit_keys)
                pipeline.simulate_task(cfg, warehouse, run_id, unit_keys, ids)
                pipeline.score_task(cfg, warehouse, run_id, unit_keys, ids)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            with closing(connect(warehouse)) as con:
                runs.finish_run(con, run_id, "finished")
            return seconds, cpu

        def measure(label: str, cfg: RunConfig) -> float:
            copy = folder / f"{label.replace(' ', '-')}.duckdb"
            shutil.copyfile(base, copy)
            load = _load()
            seconds, cpu = stages(cfg, str(copy))
            with closing(connect(str(copy))) as con:
                n = con.execute("SELECT count(*) FROM scores").fetchone()
            print(
                f"{label:<22}{seconds:>9.1f} s{args.units / seconds:>10.1f} units/s"
                f"{n[0] if n else 0:>10} scores{cpu:>8.1f} CPU-s here"
                f"   load before {load}, after {_load()}"
            )
            return seconds

        results: dict[str, float] = {}

        def measure_run(label: str, cfg: RunConfig) -> float:
            copy = folder / f"{label.replace(' ', '-').replace(',', '')}.duckdb"
            shutil.copyfile(base, copy)
            load = _load()
            start, cpu = time.perf_counter(), time.process_time()
            pipeline.run_flow(cfg, str(copy), new_run_id(cfg.config_hash))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(
                f"{label:<22}{seconds:>9.1f} s{args.units / seconds:>10.1f} units/s"
                f"{'':>17}{cpu:>8.1f} CPU-s here   load before {load}, after {_load()}"
            )
            return seconds

        chunk = {"chunk_units": args.chunk_units} if args.chunk_units else {}
        if args.whole_run:
            for n in (1, 2):
                results[f"whole run {n}"] = measure_run(
                    f"whole run, {n} worker(s)",
                    config(args.units, args.windows, kind="dask", workers=n, **chunk),
                )
        if args.local:
            results["local"] = measure("local (1 process)", config(args.units, args.windows))
        if not args.skip_cold:
            for n in (1, 2):
                results[f"cold {n}"] = measure(
                    f"cold, {n} worker(s)",
                    config(args.units, args.windows, kind="dask", workers=n, **chunk),
                )
        if not args.skip_warm:
            from distributed import Client, LocalCluster

            for n in (1, 2):
                with (
                    LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
                    ) as cluster,
                    Client(cluster) as client,
                ):
                    client.run(_warm)
                    results[f"warm {n}"] = measure(
                        f"warm, {n} worker(s)",
                        config(
                            args.units,
                            args.windows,
                            kind="dask",
                            address=cluster.scheduler_address,
                            **chunk,
                        ),
                    )
        for kind in ("cold", "warm", "whole run"):
            if f"{kind} 1" in results:
                ratio = results[f"{kind} 1"] / results[f"{kind} 2"]
                print(f"{kind}: 2 workers are {ratio:.2f}x as fast as 1 (load now {_load()})")
    shutil.rmtree(folder, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
