"""A study's units as Ray tasks (`anchors study run CONFIG --ray` / `--ray-address ADDR`).

Each (model, problem) unit is one task running study_runner.run_unit in a Ray worker process, which keeps
its loaded model and providers between tasks (study_runner.process_resources). Output goes to the study
folder, which every node must see at the same path (a shared file system). What makes failures harmless is
the unit itself: a task whose worker dies is run again by Ray (ray_task_retries) and resumes from what the
dead one left on disk (the rollout store's writer lock is an flock, released when its holder dies); a killed
driver is followed by running the same command again, which skips finished units and resumes the others.
"""

from __future__ import annotations

from typing import List, Optional

from . import _C
from ._C import Error
from .study_config import StudyConfig


def _ray():
    try:
        import ray
    except ImportError as e:
        raise Error('a study on Ray needs Ray: pip install "thought-anchors[ray]"') from e
    return ray


def _unit_task(cfg: StudyConfig, model_index: int, problem: dict) -> dict:
    """The body of a Ray task (module-level so that workers import it rather than unpickle a closure; Ray
    titles the worker process `ray::_unit_task` while it runs one)."""
    from .study_runner import process_resources, run_unit
    return run_unit(cfg, cfg.models[model_index], problem, process_resources(cfg))


def run_on_ray(cfg: StudyConfig, units: List[tuple], tracker, address: Optional[str]) -> None:
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            # address None: a new local instance on this machine (ignoring RAY_ADDRESS, which a user may have
            # set for another cluster); otherwise the running cluster at address ("auto", "host:6379", ...).
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except Exception as e:  # ConnectionError and friends from Ray, with its own message
            raise Error(f"study: cannot start or reach Ray at {address or 'a new local instance'}: {e}") from e
    try:
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(_unit_task)
        refs = {}
        for m, problem in units:
            spec = cfg.models[m]
            # A local model on a GPU cluster gets a GPU per task; endpoints need only a CPU.
            local = bool(spec.path) and (not spec.endpoints or any(
                "model" in _C.method_info(name).needs for name in cfg.methods))
            options = dict(num_cpus=1, max_retries=cfg.ray_task_retries, retry_exceptions=False)
            if gpus and local and spec.device != "cpu":
                options["num_gpus"] = 1
            refs[task.options(**options).remote(cfg, m, problem)] = (spec.name, problem["key"])
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            for ref in ready:
                unit = refs[ref]
                try:
                    tracker.finish(unit, ray.get(ref))
                except ray.exceptions.RayTaskError as e:  # the unit raised (a ta.Error, usually)
                    tracker.fail(unit, str(getattr(e, "cause", None) or e).strip().splitlines()[-1])
                except ray.exceptions.RayError as e:      # its worker died more often than ray_task_retries
                    tracker.fail(unit, f"{type(e).__name__}: {str(e).strip().splitlines()[0]}")
            tracker.tick()
    except BaseException:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        raise
    finally:
        if started_here:
            ray.shutdown()
